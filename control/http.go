package control

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
	"github.com/sluice-cdc/sluice/transforms"
)

// MaxBodyBytes bounds request bodies.
const MaxBodyBytes = 1 << 20

// OpenAPI is the API's OpenAPI 3 document, served at /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Handler returns the API's routes, all under /v1.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "not found", "no such endpoint: "+r.URL.Path, nil)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusMethodNotAllowed, "method not allowed", r.Method+" is not allowed on "+r.URL.Path, nil)
	})
	r.Get("/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPI)
	})
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Get("/v1/status", s.getStatus)
		for _, kind := range []spec.Kind{spec.KindSource, spec.KindPipeline} {
			base := "/v1/" + plural(kind)
			r.Get(base, s.list(kind))
			r.Get(base+"/{name}", s.get(kind))
			r.Put(base+"/{name}", s.put(kind))
			r.Delete(base+"/{name}", s.delete(kind))
			r.Get(base+"/{name}/status", s.status(kind))
			r.Get(base+"/{name}/versions", s.versions(kind))
			r.Get(base+"/{name}/versions/{version}", s.version(kind))
			r.Post(base+"/{name}/{action}", s.action(kind))
		}
		r.Post("/v1/sources/{name}/resnapshot", s.resnapshot)
		r.Delete("/v1/sources/{name}/resnapshot", s.cancelResnapshot)
	})
	return r
}

func plural(k spec.Kind) string {
	if k == spec.KindSource {
		return "sources"
	}
	return "pipelines"
}

// authenticate checks the bearer token: any known token may GET, only an
// admin token may change anything. Without configured tokens the API is
// open (the server then listens on loopback only).
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Tokens.Empty() {
			next.ServeHTTP(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		role := ""
		if ok {
			role = s.Tokens.Role(strings.TrimSpace(tok))
		}
		switch {
		case role == "":
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			problem(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required", nil)
		case role != RoleAdmin && r.Method != http.MethodGet && r.Method != http.MethodHead:
			problem(w, http.StatusForbidden, "forbidden", "this token may only read (role "+role+")", nil)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// fieldProblem is one invalid field of a spec or request.
type fieldProblem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
}

// problem writes an RFC 7807 problem document.
func problem(w http.ResponseWriter, status int, title, detail string, fields []fieldProblem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Type   string         `json:"type"`
		Title  string         `json:"title"`
		Status int            `json:"status"`
		Detail string         `json:"detail,omitempty"`
		Errors []fieldProblem `json:"errors,omitempty"`
	}{"about:blank", title, status, detail, fields})
}

// specProblems turns a spec parse or validation error into field problems.
func specProblems(err error) []fieldProblem {
	var out []fieldProblem
	var walk func(error)
	walk = func(err error) {
		var de *spec.DocumentError
		switch e := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		default:
			if errors.As(err, &de) {
				var fe *spec.FieldError
				if errors.As(de.Err, &fe) {
					out = append(out, fieldProblem{Path: fe.Path, Message: fe.Msg, Line: de.Line})
					return
				}
				out = append(out, fieldProblem{Message: de.Err.Error(), Line: de.Line})
				return
			}
			var fe *spec.FieldError
			if errors.As(err, &fe) {
				out = append(out, fieldProblem{Path: fe.Path, Message: fe.Msg})
				return
			}
			out = append(out, fieldProblem{Message: err.Error()})
		}
	}
	walk(err)
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// readBody reads a size-limited body; ok false means a problem was written.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem(w, http.StatusRequestEntityTooLarge, "request body too large",
				fmt.Sprintf("the body may hold at most %d bytes", MaxBodyBytes), nil)
			return nil, false
		}
		problem(w, http.StatusBadRequest, "cannot read the request body", err.Error(), nil)
		return nil, false
	}
	return b, true
}

// decodeJSON decodes an optional JSON request body strictly.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, ok := readBody(w, r)
	if !ok {
		return false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem(w, http.StatusBadRequest, "invalid request body", err.Error(), nil)
		return false
	}
	return true
}

// resource is a source or pipeline as the API returns it.
type resource struct {
	Head
	Status *worker.Status `json:"status,omitempty"`
	Spec   spec.Spec      `json:"spec,omitempty"`
}

func (s *Server) resource(h Head, withSpec bool) resource {
	res := resource{Head: h}
	if st, ok := s.Runtime.Status(h.Kind, h.Name); ok {
		res.Status = &st
	}
	if withSpec {
		if _, v, ok := s.Store.Get(h.Kind, h.Name); ok {
			if sp, err := parseVersion(v); err == nil {
				res.Spec = sp
			}
		}
	}
	return res
}

func (s *Server) list(kind spec.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		out := []resource{}
		for _, h := range s.Store.List(kind) {
			out = append(out, s.resource(h, false))
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// found returns the head of the named resource, or writes a 404.
func (s *Server) found(w http.ResponseWriter, r *http.Request, kind spec.Kind) (Head, bool) {
	name := chi.URLParam(r, "name")
	h, _, ok := s.Store.Get(kind, name)
	if !ok {
		problem(w, http.StatusNotFound, "not found", fmt.Sprintf("no %s named %q", strings.ToLower(string(kind)), name), nil)
	}
	return h, ok
}

func (s *Server) get(kind spec.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h, ok := s.found(w, r, kind); ok {
			writeJSON(w, http.StatusOK, s.resource(h, true))
		}
	}
}

func (s *Server) status(kind spec.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h, ok := s.found(w, r, kind)
		if !ok {
			return
		}
		st, ok := s.Runtime.Status(kind, h.Name)
		if !ok {
			st = worker.Status{Kind: kind, Name: h.Name, Version: h.Version, Desired: h.Desired, State: worker.StateStopped}
			if h.Resnapshot != nil {
				rs := &worker.ResnapshotStatus{Resnapshot: *h.Resnapshot, State: worker.ResnapshotPending}
				switch {
				case h.Resnapshot.CompletedAt != nil:
					rs.State = worker.ResnapshotDone
				case h.Resnapshot.CancelledAt != nil:
					rs.State = worker.ResnapshotCancelled
				}
				st.Resnapshot = rs
			}
		}
		writeJSON(w, http.StatusOK, st)
	}
}

func (s *Server) getStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Runtime.Statuses())
}

func (s *Server) versions(kind spec.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.found(w, r, kind); !ok {
			return
		}
		vs, _ := s.Store.Versions(kind, chi.URLParam(r, "name"))
		type item struct {
			Version   int       `json:"version"`
			CreatedAt time.Time `json:"created_at"`
		}
		out := make([]item, len(vs))
		for i, v := range vs {
			out[i] = item{v.Version, v.CreatedAt}
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func (s *Server) version(kind spec.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := s.found(w, r, kind); !ok {
			return
		}
		n, err := strconv.Atoi(chi.URLParam(r, "version"))
		vs, _ := s.Store.Versions(kind, chi.URLParam(r, "name"))
		for _, v := range vs {
			if err == nil && v.Version == n {
				writeJSON(w, http.StatusOK, v)
				return
			}
		}
		problem(w, http.StatusNotFound, "not found", "no version "+chi.URLParam(r, "version"), nil)
	}
}

// parseBody parses a PUT or validate body as one spec of kind named name.
func parseBody(w http.ResponseWriter, r *http.Request, kind spec.Kind, name string) (spec.Spec, string, string, bool) {
	body, ok := readBody(w, r)
	if !ok {
		return nil, "", "", false
	}
	format, file := "yaml", "body.yaml"
	if strings.Contains(r.Header.Get("Content-Type"), "json") {
		format, file = "json", "body.json"
	}
	specs, err := spec.Parse(body, file)
	if err != nil {
		problem(w, http.StatusBadRequest, "invalid spec", "the spec has problems; see errors", specProblems(err))
		return nil, "", "", false
	}
	if len(specs) != 1 || specs[0].Kind() != kind {
		problem(w, http.StatusBadRequest, "invalid spec",
			fmt.Sprintf("the body must hold exactly one %s document", kind), []fieldProblem{{Path: "kind", Message: "want " + string(kind)}})
		return nil, "", "", false
	}
	if specs[0].Ident() != name {
		problem(w, http.StatusBadRequest, "invalid spec", "the spec's name must match the URL",
			[]fieldProblem{{Path: "name", Message: fmt.Sprintf("%q differs from %q in the URL", specs[0].Ident(), name)}})
		return nil, "", "", false
	}
	return specs[0], format, string(body), true
}

// checkPipeline checks what a pipeline refers to: a stored source with
// its tables, and stages that compile.
func (s *Server) checkPipeline(p *spec.Pipeline) []fieldProblem {
	var errs []error
	sources := map[string]*spec.Source{}
	if src, err := s.source(p.From.Source); err == nil {
		sources[src.Name] = src
	}
	errs = append(errs, p.CheckReferences(sources))
	// Check, not Compile: the API neither resolves salts nor reads code
	// table files (the worker does, when it runs the pipeline).
	if err := transforms.Check(p.Stages); err != nil {
		errs = append(errs, err)
	}
	return specProblems(errors.Join(errs...))
}

func (s *Server) put(kind spec.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		sp, format, text, ok := parseBody(w, r, kind, name)
		if !ok {
			return
		}
		if p, isPipeline := sp.(*spec.Pipeline); isPipeline {
			if fps := s.checkPipeline(p); len(fps) > 0 {
				problem(w, http.StatusBadRequest, "invalid spec", "the pipeline refers to what does not exist", fps)
				return
			}
		}
		h, created, err := s.Store.Put(r.Context(), kind, name, format, text)
		if err != nil {
			problem(w, http.StatusServiceUnavailable, "cannot store the spec", err.Error(), nil)
			return
		}
		s.Logger.Info("spec applied", strings.ToLower(string(kind)), name, "version", h.Version, "created", created)
		s.Reconcile()
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, s.resource(h, true))
	}
}

func (s *Server) delete(kind spec.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h, ok := s.found(w, r, kind)
		if !ok {
			return
		}
		if kind == spec.KindSource {
			var users []string
			for _, ph := range s.Store.List(spec.KindPipeline) {
				if p, err := s.pipeline(ph.Name); err == nil && p.From.Source == h.Name {
					users = append(users, ph.Name)
				}
			}
			if len(users) > 0 {
				problem(w, http.StatusConflict, "source in use",
					fmt.Sprintf("delete the pipelines reading it first: %s", strings.Join(users, ", ")), nil)
				return
			}
		}
		if err := s.Store.Delete(r.Context(), kind, h.Name); err != nil {
			problem(w, http.StatusServiceUnavailable, "cannot store the change", err.Error(), nil)
			return
		}
		s.Logger.Info("deleted", strings.ToLower(string(kind)), h.Name)
		s.Reconcile()
		w.WriteHeader(http.StatusNoContent)
	}
}
