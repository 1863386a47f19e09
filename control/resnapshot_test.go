package control

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
)

// TestResnapshotAPI checks the resnapshot request: bad input, state, the
// stored request and its IDs, merging with a request not done yet, and
// that it survives a restart, a new spec version and a re-created source.
func TestResnapshotAPI(t *testing.T) {
	s, rt, reopen := newTestServer(t)
	rt.lockedStore, rt.lockErr = s.Store, t.Errorf
	h := s.Handler()
	const (
		yaml = "application/yaml"
		js   = "application/json"
		path = "/v1/sources/src/resnapshot"
	)
	src := "kind: Source\nname: src\npostgres:\n  dsn: ${env:SRC_DSN}\n  tables: [public.t1, t2]\n"
	for _, c := range []call{
		{"POST", "/v1/sources/nope/resnapshot", admin, js, `{"tables": ["public.t1"]}`, 404, `no source named \"nope\"`},
		{"PUT", "/v1/sources/src", admin, yaml, src, 201, ""},
		{"POST", path, "", js, `{"tables": ["public.t1"]}`, 401, ""},
		{"POST", path, read, js, `{"tables": ["public.t1"]}`, 403, ""},
		{"POST", path, admin, js, ``, 400, `"path":"tables"`},
		{"POST", path, admin, js, `{"tables": []}`, 400, `"path":"tables"`},
		{"POST", path, admin, js, `{"tables": ["public.t1", "public.nope"]}`, 400, `"path":"tables[1]","message":"source \"src\" does not capture public.nope`},
		{"POST", path, admin, js, `{"tables": ["a.b.c"]}`, 400, `"path":"tables[0]"`},
		{"POST", path, admin, js, `{"tabels": ["public.t1"]}`, 400, `unknown field \"tabels\"`},
		{"POST", path, admin, js, `{"tables": "public.t1"}`, 400, "cannot unmarshal"},
		{"POST", "/v1/pipelines/copy/resnapshot", admin, js, `{"tables": ["public.t1"]}`, 404, "pipeline actions are"},
		{"POST", "/v1/sources/src/explode", admin, "", "", 404, "resnapshot"},
		{"POST", "/v1/sources/src/stop", admin, "", "", 200, ""},
		{"POST", path, admin, js, `{"tables": ["public.t1"]}`, 409, "start it first"},
		{"POST", "/v1/sources/src/start", admin, "", "", 200, ""},
		{"POST", path, admin, js, `{"tables": ["t2", "public.t2"]}`, 202, `"result": "resnapshot 1 of public.t2 accepted"`},
		{"GET", "/v1/sources/src/status", read, "", "", 200, `"state": "running"`},
	} {
		c.do(t, h)
	}
	u, _ := rt.unit(spec.KindSource, "src")
	if u.Resnapshot == nil || u.Resnapshot.ID != 1 || !slices.Equal(u.Resnapshot.Tables, []string{"public.t2"}) {
		t.Fatalf("the runtime got resnapshot %+v, want 1 of public.t2", u.Resnapshot)
	}
	// The same request again (a client retrying after a lost answer) is
	// request 1: nothing is stored, the source is not restarted.
	before, _, _ := s.Store.Get(spec.KindSource, "src")
	call{"POST", path, admin, js, `{"tables": ["public.t2"]}`, 202, `"result": "resnapshot 1 of public.t2 accepted (the same request as before`}.do(t, h)
	if after, _, _ := s.Store.Get(spec.KindSource, "src"); !after.UpdatedAt.Equal(before.UpdatedAt) || after.Resnapshot.ID != 1 {
		t.Fatalf("a repeated request changed the head: %+v, before %+v", after, before)
	}
	if u2, _ := rt.unit(spec.KindSource, "src"); !u2.Resnapshot.Same(u.Resnapshot) || u.Resnapshot.Nonce == "" {
		t.Fatalf("after a repeated request the runtime got resnapshot %+v, want %+v with a nonce", u2.Resnapshot, u.Resnapshot)
	}
	// Request 1 is not done: request 2 replaces it and includes its tables.
	call{"POST", path, admin, js, `{"tables": ["t1"]}`, 202, "resnapshot 2 of public.t2, public.t1 accepted (with the tables of resnapshot 1"}.do(t, h)
	if u2, _ := rt.unit(spec.KindSource, "src"); u2.Resnapshot.ID != 2 || u2.Resnapshot.Nonce == "" || u2.Resnapshot.Nonce == u.Resnapshot.Nonce {
		t.Fatalf("request 2 is %+v, after %+v: want a nonce of its own", u2.Resnapshot, u.Resnapshot)
	}
	// Its client retrying after a lost answer asks for t1 only: request 2
	// covers it, so that is request 2, not a request 3 restarting the read.
	call{"POST", path, admin, js, `{"tables": ["t1"]}`, 202, "resnapshot 2 of public.t2, public.t1 accepted (the same request as before"}.do(t, h)
	rt.mu.Lock()
	rt.resnapDone = map[string]int64{"src": 2}
	rt.mu.Unlock()
	s.recordResnapshots(t.Context())
	call{"GET", "/v1/sources/src", read, "", "", 200, `"completed_at": "2026-11-23T10:00:00Z"`}.do(t, h)
	// Request 2 is done: request 3 has only its own tables.
	call{"POST", path, admin, js, `{"tables": ["t1"]}`, 202, `"result": "resnapshot 3 of public.t1 accepted"`}.do(t, h)
	if u, _ := rt.unit(spec.KindSource, "src"); u.Resnapshot.ID != 3 || u.Resnapshot.CompletedAt != nil {
		t.Fatalf("the runtime got resnapshot %+v, want 3, not completed", u.Resnapshot)
	}
	// A new spec version keeps the request.
	call{"PUT", "/v1/sources/src", admin, yaml, src + "snapshot: never\n", 200, `"id": 3`}.do(t, h)

	// A restarted server runs the request that is not done.
	store, err := OpenStore(t.Context(), reopen())
	if err != nil {
		t.Fatal(err)
	}
	rt2 := &fakeRuntime{}
	s2 := &Server{Instance: "test", Store: store, Runtime: rt2, Tokens: s.Tokens, Logger: s.Logger}
	s2.Reconcile()
	if u, ok := rt2.unit(spec.KindSource, "src"); !ok || u.Resnapshot == nil || u.Resnapshot.ID != 3 || u.Version != 2 {
		t.Fatalf("after a restart the source is %+v", u)
	}
	// IDs never go back, even for a source deleted and created again
	// (its stored position and slot stay).
	h2 := s2.Handler()
	call{"DELETE", "/v1/sources/src", admin, "", "", 204, ""}.do(t, h2)
	call{"PUT", "/v1/sources/src", admin, yaml, src, 201, ""}.do(t, h2)
	rec := call{"POST", path, admin, js, `{"tables": ["t2"]}`, 202, ""}.do(t, h2)
	if !strings.Contains(rec.Body.String(), `"id": 4`) {
		t.Fatalf("after re-creating the source: %s, want id 4", rec.Body.String())
	}
}

// TestResnapshotCancel cancels requests: not one that is done or absent
// (409), a pending one (the runtime gets it cancelled, so the source
// restarts without it), again (the same answer), and a request after it
// does not take its tables.
func TestResnapshotCancel(t *testing.T) {
	s, rt, _ := newTestServer(t)
	rt.lockedStore, rt.lockErr = s.Store, t.Errorf
	h := s.Handler()
	const (
		js   = "application/json"
		path = "/v1/sources/src/resnapshot"
	)
	src := "kind: Source\nname: src\npostgres:\n  dsn: ${env:SRC_DSN}\n  tables: [public.t1, t2]\n"
	for _, c := range []call{
		{"DELETE", "/v1/sources/nope/resnapshot", admin, "", "", 404, `no source named \"nope\"`},
		{"PUT", "/v1/sources/src", admin, "application/yaml", src, 201, ""},
		{"DELETE", path, admin, "", "", 409, "has no resnapshot request"},
		{"POST", path, admin, js, `{"tables": ["t1"]}`, 202, "resnapshot 1 of public.t1 accepted"},
		{"DELETE", path, "", "", "", 401, ""},
		{"DELETE", path, read, "", "", 403, ""},
		{"DELETE", path, admin, "", "", 200, `"result": "resnapshot 1 of public.t1 cancelled; the source streams on without it"`},
		{"GET", "/v1/sources/src/status", read, "", "", 200, `"state": "cancelled"`},
		{"DELETE", path, admin, "", "", 200, "resnapshot 1 of public.t1 cancelled"},
	} {
		c.do(t, h)
	}
	u, _ := rt.unit(spec.KindSource, "src")
	if u.Resnapshot == nil || u.Resnapshot.ID != 1 || u.Resnapshot.CancelledAt == nil {
		t.Fatalf("the runtime got resnapshot %+v, want 1 cancelled", u.Resnapshot)
	}
	if hd, _, _ := s.Store.Get(spec.KindSource, "src"); hd.Resnapshot.CancelledAt == nil {
		t.Fatalf("the stored request is %+v, want it cancelled", hd.Resnapshot)
	}
	// A request after a cancelled one has only its own tables, and the
	// same tables again are a new request, not the cancelled one.
	call{"POST", path, admin, js, `{"tables": ["t2"]}`, 202, `"result": "resnapshot 2 of public.t2 accepted"`}.do(t, h)
	call{"POST", path, admin, js, `{"tables": ["t2"]}`, 202, "resnapshot 2 of public.t2 accepted (the same request"}.do(t, h)
	rt.mu.Lock()
	rt.resnapDone = map[string]int64{"src": 2}
	rt.mu.Unlock()
	call{"DELETE", path, admin, "", "", 409, "is done: there is nothing to cancel"}.do(t, h)
	// Recorded done, still not cancellable (the check no longer depends on
	// the runtime).
	s.recordResnapshots(t.Context())
	rt.mu.Lock()
	rt.resnapDone = nil
	rt.mu.Unlock()
	call{"DELETE", path, admin, "", "", 409, "is done: there is nothing to cancel"}.do(t, h)
	call{"POST", path, admin, js, `{"tables": ["t1"]}`, 202, "resnapshot 3 of public.t1 accepted"}.do(t, h)
	if u, _ := rt.unit(spec.KindSource, "src"); u.Resnapshot.ID != 3 || u.Resnapshot.CancelledAt != nil {
		t.Fatalf("the runtime got resnapshot %+v, want 3, not cancelled", u.Resnapshot)
	}
	// A cancel accepted while the source was finishing wins: the
	// completion reported after it is not recorded.
	call{"DELETE", path, admin, "", "", 200, "resnapshot 3 of public.t1 cancelled"}.do(t, h)
	rt.mu.Lock()
	rt.resnapDone = map[string]int64{"src": 3}
	rt.mu.Unlock()
	s.recordResnapshots(t.Context())
	if hd, _, _ := s.Store.Get(spec.KindSource, "src"); hd.Resnapshot.CancelledAt == nil || hd.Resnapshot.CompletedAt != nil {
		t.Fatalf("request 3 is %+v, want cancelled and not completed", hd.Resnapshot)
	}
}

// TestCompleteResnapshotKeepsOtherServersChanges: two API servers share
// the control topic. The one that records a completion has an older view
// (its last reload) than the other's newer request and desired state, and
// a head is written whole: it must read the topic again first, not
// overwrite them.
func TestCompleteResnapshotKeepsOtherServersChanges(t *testing.T) {
	kv, reopen := kafkaKV(t)
	a, err := OpenStore(t.Context(), kv)
	if err != nil {
		t.Fatal(err)
	}
	src := "kind: Source\nname: src\npostgres:\n  dsn: ${env:SRC_DSN}\n  tables: [public.t1, t2]\n"
	if _, _, err := a.Put(t.Context(), spec.KindSource, "src", "yaml", src); err != nil {
		t.Fatal(err)
	}
	req1, _, err := a.RequestResnapshot(t.Context(), "src", []string{"public.t1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenStore(t.Context(), reopen())
	if err != nil {
		t.Fatal(err)
	}
	// Server a, after b's last reload: request 1 is done (a learns it
	// from its runtime), request 2 is made, and the source is stopped.
	req2, _, err := a.RequestResnapshot(t.Context(), "src", []string{"public.t2"}, &req1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetDesired(t.Context(), spec.KindSource, "src", worker.StateStopped); err != nil {
		t.Fatal(err)
	}
	// Server b's runtime reports request 1 done; its view says request 1
	// is the latest and the source runs.
	if err := b.CompleteResnapshot(t.Context(), "src", &req1, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, who string) Head {
		t.Helper()
		if err := s.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		h, _, _ := s.Get(spec.KindSource, "src")
		if h.Desired != worker.StateStopped || !h.Resnapshot.Same(&req2) {
			t.Fatalf("%s sees desired %s and request %+v, want stopped and request 2 %+v", who, h.Desired, h.Resnapshot, req2)
		}
		return h
	}
	if h := check(a, "server a"); h.Resnapshot.CompletedAt != nil {
		t.Fatalf("request 2 is recorded complete: %+v", h.Resnapshot)
	}
	// Request 2's completion is recorded, and the desired state kept.
	if err := b.CompleteResnapshot(t.Context(), "src", &req2, time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	if h := check(a, "server a"); h.Resnapshot.CompletedAt == nil {
		t.Fatalf("request 2's completion is not recorded: %+v", h.Resnapshot)
	}
}
