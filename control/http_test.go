package control

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
)

// fakeRuntime records what the control plane asks to run; the worker
// itself is tested with real servers elsewhere.
type fakeRuntime struct {
	mu    sync.Mutex
	units []worker.Unit
	// resnapDone is the resnapshot ID each source completed.
	resnapDone map[string]int64
	// lockedStore, when set, makes Status report (to lockErr) a call
	// made while that store's locks are held.
	lockedStore *Store
	lockErr     func(format string, args ...any)
}

func (f *fakeRuntime) Set(units []worker.Unit) {
	f.mu.Lock()
	f.units = units
	f.mu.Unlock()
}

func (f *fakeRuntime) Statuses() []worker.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []worker.Status
	for _, u := range f.units {
		st := worker.Status{Kind: u.Kind, Name: u.Name, Version: u.Version, Desired: u.Desired, State: u.Desired}
		if u.Resnapshot != nil {
			rs := &worker.ResnapshotStatus{Resnapshot: *u.Resnapshot, State: worker.ResnapshotRunning}
			if u.Resnapshot.CancelledAt != nil {
				rs.State = worker.ResnapshotCancelled
			}
			if f.resnapDone[u.Name] >= u.Resnapshot.ID {
				at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
				rs.State, rs.CompletedAt = worker.ResnapshotDone, &at
			}
			st.Resnapshot = rs
		}
		out = append(out, st)
	}
	return out
}

func (f *fakeRuntime) Status(kind spec.Kind, name string) (worker.Status, bool) {
	if st := f.lockedStore; st != nil {
		for what, mu := range map[string]*sync.Mutex{"writeMu": &st.writeMu, "mu": &st.mu} {
			if !mu.TryLock() {
				f.lockErr("Runtime.Status(%s, %s) called with the store's %s held", kind, name, what)
				continue
			}
			mu.Unlock()
		}
	}
	for _, s := range f.Statuses() {
		if s.Kind == kind && s.Name == name {
			return s, true
		}
	}
	return worker.Status{}, false
}

func (f *fakeRuntime) ReprocessDeadLetters(context.Context, *spec.Pipeline, *spec.Source) (int64, int64, error) {
	return 3, 1, nil
}

func (f *fakeRuntime) unit(kind spec.Kind, name string) (worker.Unit, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.units {
		if u.Kind == kind && u.Name == name {
			return u, true
		}
	}
	return worker.Unit{}, false
}

// kafkaKV starts an embedded broker and returns a control-topic store on
// it, and a function that opens the same topic again (a restart).
func kafkaKV(t *testing.T) (KV, func() KV) {
	t.Helper()
	emb, err := broker.StartEmbedded(t.TempDir(), "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	open := func() KV {
		cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		kv, err := broker.NewStore(t.Context(), cl, broker.NewTopics(cl, 1, -1), spec.ControlTopic("test", spec.ControlConfigs))
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	return open(), open
}

func newTestServer(t *testing.T) (*Server, *fakeRuntime, func() KV) {
	t.Helper()
	kv, reopen := kafkaKV(t)
	store, err := OpenStore(t.Context(), kv)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := ParseTokens("# tokens\nadmin:adm-token-123\n\nread:read-token-456\n")
	if err != nil {
		t.Fatal(err)
	}
	rt := &fakeRuntime{}
	return &Server{Instance: "test", Store: store, Runtime: rt, Tokens: tokens, Logger: slog.New(slog.DiscardHandler)}, rt, reopen
}

const (
	admin    = "adm-token-123"
	read     = "read-token-456"
	srcYAML  = "kind: Source\nname: src\npostgres:\n  dsn: ${env:SRC_DSN}\n  tables: [public.t1]\n"
	pipeYAML = "kind: Pipeline\nname: copy\nfrom: {source: src}\nsink: {postgres: {dsn: '${env:DST_DSN}'}}\n"
)

type call struct {
	method, path, token, ctype, body string
	status                           int
	contains                         string // in the body
}

func (c call) do(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != c.status {
		t.Fatalf("%s %s: status %d, want %d; body: %s", c.method, c.path, rec.Code, c.status, rec.Body.String())
	}
	if c.contains != "" && !strings.Contains(rec.Body.String(), c.contains) {
		t.Fatalf("%s %s: body %s does not contain %q", c.method, c.path, rec.Body.String(), c.contains)
	}
	if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%s %s: error with content type %q, want application/problem+json", c.method, c.path, rec.Header().Get("Content-Type"))
	}
	return rec
}

func TestAPI(t *testing.T) {
	s, rt, _ := newTestServer(t)
	h := s.Handler()
	const yaml = "application/yaml"
	for _, c := range []call{
		// Authentication and roles.
		{"PUT", "/v1/sources/src", "", yaml, srcYAML, 401, "bearer token"},
		{"PUT", "/v1/sources/src", "wrong-token-000", yaml, srcYAML, 401, ""},
		{"PUT", "/v1/sources/src", read, yaml, srcYAML, 403, "only read"},
		{"GET", "/v1/sources", "", "", "", 401, ""},
		{"GET", "/v1/openapi.json", "", "", "", 200, `"openapi"`},
		// Create, unchanged, replace.
		{"PUT", "/v1/sources/src", admin, yaml, srcYAML, 201, `"version": 1`},
		{"PUT", "/v1/sources/src", admin, yaml, srcYAML, 200, `"version": 1`},
		{"PUT", "/v1/sources/src", admin, yaml, srcYAML + "snapshot: never\n", 200, `"version": 2`},
		{"GET", "/v1/sources/src", read, "", "", 200, `"dsn": "${env:SRC_DSN}"`},
		{"GET", "/v1/sources", read, "", "", 200, `"name": "src"`},
		{"GET", "/v1/sources/src/versions", read, "", "", 200, `"version": 2`},
		{"GET", "/v1/sources/src/versions/1", read, "", "", 200, `tables: [public.t1]`},
		{"GET", "/v1/sources/src/versions/9", read, "", "", 404, ""},
		// Bad input.
		{"PUT", "/v1/sources/bad", admin, yaml, "kind: Source\nname: [oops\n", 400, "yaml"},
		{"PUT", "/v1/sources/bad", admin, yaml, "kind: Source\nname: bad\npostgres: {dsn: x, tables: [t]}\nbogus_field: 1\n", 400, `"path":"bogus_field"`},
		{"PUT", "/v1/sources/bad", admin, yaml, "kind: Source\nname: bad\npostgres: {dsn: x, tables: t}\n", 400, `"path":"postgres.tables"`},
		{"PUT", "/v1/sources/bad", admin, "application/json", `{"kind": "Source", "name": "bad", "postgres": {"dsn": [1], "tables": ["t"]}}`, 400, `"path":"postgres.dsn"`},
		{"PUT", "/v1/sources/other", admin, yaml, srcYAML, 400, "differs"},
		{"PUT", "/v1/sources/src", admin, yaml, pipeYAML, 400, "exactly one Source"},
		{"PUT", "/v1/sources/big", admin, yaml, "kind: Source\nname: big\n# " + strings.Repeat("x", MaxBodyBytes) + "\n", 413, ""},
		{"PUT", "/v1/pipelines/copy", admin, yaml, strings.Replace(pipeYAML, "source: src", "source: nope", 1), 400, `"path":"from.source"`},
		{"GET", "/v1/sources/nope", read, "", "", 404, `no source named \"nope\"`},
		{"GET", "/v1/nothing", read, "", "", 404, ""},
		// Pipelines and actions.
		{"PUT", "/v1/pipelines/copy", admin, yaml, pipeYAML, 201, `"desired_state": "running"`},
		{"POST", "/v1/pipelines/copy/clear", admin, "", "", 409, "stop or pause it first"},
		{"POST", "/v1/pipelines/copy/explode", admin, "", "", 404, "pipeline actions are"},
		{"POST", "/v1/sources/src/clear", admin, "", "", 404, "source actions are"},
		{"POST", "/v1/pipelines/copy/pause", read, "", "", 403, ""},
		{"POST", "/v1/pipelines/copy/pause", admin, "", "", 200, `"desired state paused"`},
		{"POST", "/v1/pipelines/copy/restart", admin, "", "", 409, "start it instead"},
		{"POST", "/v1/pipelines/copy/replay", admin, "application/json", `{"from": "yesterday"}`, 400, "from: want earliest"},
		{"POST", "/v1/pipelines/copy/replay", admin, "application/json", `{"form": "earliest"}`, 400, "unknown field"},
		{"POST", "/v1/pipelines/copy/reprocess", admin, "", "", 200, "reprocessed 3 dead letters: 2 applied, 1 failed again"},
		{"POST", "/v1/pipelines/copy/resume", admin, "", "", 200, `"desired state running"`},
		{"POST", "/v1/pipelines/copy/restart", admin, "", "", 200, "restarting"},
		{"POST", "/v1/sources/src/restore", admin, "application/json", `{"version": 1}`, 200, "restored as version 3"},
		{"POST", "/v1/sources/src/restore", admin, "application/json", `{"version": 7}`, 404, ""},
		{"GET", "/v1/status", read, "", "", 200, `"name": "copy"`},
		{"GET", "/v1/pipelines/copy/status", read, "", "", 200, `"state": "running"`},
		// Delete.
		{"DELETE", "/v1/sources/src", admin, "", "", 409, "copy"},
		{"DELETE", "/v1/pipelines/copy", admin, "", "", 204, ""},
		{"GET", "/v1/pipelines/copy", read, "", "", 404, ""},
		{"DELETE", "/v1/sources/src", admin, "", "", 204, ""},
	} {
		c.do(t, h)
		if c.path == "/v1/pipelines/copy/restart" && c.status == 200 {
			if u, _ := rt.unit(spec.KindPipeline, "copy"); u.Generation != 1 {
				t.Errorf("restart: generation %d, want 1", u.Generation)
			}
		}
		if c.path == "/v1/pipelines/copy/pause" && c.status == 200 {
			if u, _ := rt.unit(spec.KindPipeline, "copy"); u.Desired != worker.StatePaused || u.Source == nil || u.SourceVersion != 2 {
				t.Errorf("pause: runtime got %+v", u)
			}
		}
	}
	if len(rt.units) != 0 {
		t.Errorf("after deleting everything the runtime still runs %v", rt.units)
	}
}

// TestStateSurvivesRestart reopens the control topic as a restarted
// server would and finds the same specs, versions and desired states.
func TestStateSurvivesRestart(t *testing.T) {
	s, _, reopen := newTestServer(t)
	h := s.Handler()
	call{"PUT", "/v1/sources/src", admin, "application/yaml", srcYAML, 201, ""}.do(t, h)
	call{"PUT", "/v1/pipelines/copy", admin, "application/yaml", pipeYAML, 201, ""}.do(t, h)
	call{"PUT", "/v1/pipelines/copy", admin, "application/yaml", pipeYAML + "stages: [{drop: [x]}]\n", 200, ""}.do(t, h)
	call{"POST", "/v1/pipelines/copy/stop", admin, "", "", 200, ""}.do(t, h)

	store, err := OpenStore(t.Context(), reopen())
	if err != nil {
		t.Fatal(err)
	}
	rt := &fakeRuntime{}
	s2 := &Server{Instance: "test", Store: store, Runtime: rt, Tokens: s.Tokens, Logger: s.Logger}
	s2.Reconcile()
	u, ok := rt.unit(spec.KindPipeline, "copy")
	if !ok || u.Version != 2 || u.Desired != worker.StateStopped || len(u.Pipeline.Stages) != 1 {
		t.Fatalf("after a restart the pipeline is %+v (found %v)", u, ok)
	}
	if u, ok := rt.unit(spec.KindSource, "src"); !ok || u.Desired != worker.StateRunning {
		t.Fatalf("after a restart the source is %+v (found %v)", u, ok)
	}
}

// TestOpenAPIMatchesRoutes checks that every route is documented and every
// documented route exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	var routed []string
	s := &Server{}
	err := chi.Walk(s.Handler().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routed = append(routed, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(documented)
	sort.Strings(routed)
	if strings.Join(documented, "\n") != strings.Join(routed, "\n") {
		t.Errorf("documented:\n%s\n\nrouted:\n%s", strings.Join(documented, "\n"), strings.Join(routed, "\n"))
	}
}

func TestTokens(t *testing.T) {
	for _, bad := range []string{"admin", "root:abcdefghij", "read:short", ":abcdefghij"} {
		if _, err := ParseTokens(bad); err == nil {
			t.Errorf("ParseTokens(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "abcdefghij") {
			t.Errorf("the error repeats the token: %v", err)
		}
	}
	tok, err := ParseTokens("admin:aaaaaaaaaa\nread: bbbbbbbbbb \n")
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{"aaaaaaaaaa": RoleAdmin, "bbbbbbbbbb": RoleRead, "cccccccccc": "", "": ""} {
		if got := tok.Role(in); got != want {
			t.Errorf("Role(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPublishStatus(t *testing.T) {
	s, _, reopen := newTestServer(t)
	s.StatusKV = reopen()
	call{"PUT", "/v1/sources/src", admin, "application/yaml", srcYAML, 201, ""}.do(t, s.Handler())
	s.publishStatus(t.Context())
	all, err := s.StatusKV.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(all["Source/src"]), `"desired_state":"running"`) {
		t.Fatalf("published statuses: %q", all)
	}
}
