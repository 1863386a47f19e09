package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
)

// resnapshotRequest is the body of POST /v1/sources/{name}/resnapshot.
type resnapshotRequest struct {
	Tables []string `json:"tables"`
}

// resnapshotResult is the answer to an accepted resnapshot request.
type resnapshotResult struct {
	actionResult
	Resnapshot worker.Resnapshot `json:"resnapshot"`
}

// resnapshot accepts a request to read some tables of a running source
// again while the others keep streaming. The request is stored with the
// source's desired state before it is answered (202), so a server that
// dies before the source completes it runs it again when it restarts;
// the source's status says when it is done.
func (s *Server) resnapshot(w http.ResponseWriter, r *http.Request) {
	h, ok := s.found(w, r, spec.KindSource)
	if !ok {
		return
	}
	var body resnapshotRequest
	if !decodeJSON(w, r, &body) {
		return
	}
	src, err := s.source(h.Name)
	if err != nil {
		problem(w, http.StatusInternalServerError, "stored spec is unreadable", err.Error(), nil)
		return
	}
	tables, probs := resnapshotTables(src, body.Tables)
	if len(probs) > 0 {
		problem(w, http.StatusBadRequest, "invalid request", "name tables the source captures", probs)
		return
	}
	if h.Desired != worker.StateRunning {
		problem(w, http.StatusConflict, "not possible now",
			fmt.Sprintf("source %q is %s; start it first: a resnapshot runs while the source streams", h.Name, h.Desired), nil)
		return
	}
	req, repeated, err := s.Store.RequestResnapshot(r.Context(), h.Name, tables, s.runtimeDone(h.Name))
	if err != nil {
		problem(w, http.StatusServiceUnavailable, "cannot store the request", err.Error(), nil)
		return
	}
	result := fmt.Sprintf("resnapshot %d of %s accepted", req.ID, strings.Join(req.Tables, ", "))
	switch {
	case repeated:
		// The same request again (a retry after a lost answer): the
		// source goes on with it, it is not restarted.
		result += " (the same request as before, not done yet: it goes on)"
	case len(req.Tables) > len(tables):
		result += fmt.Sprintf(" (with the tables of resnapshot %d, which it replaces before it completed)", req.ID-1)
	}
	if !repeated {
		s.Reconcile()
		s.Logger.Info("action", "action", "resnapshot", "source", h.Name, "resnapshot", req.ID, "tables", req.Tables)
	}
	s.answerResnapshot(w, http.StatusAccepted, h.Name, result, req)
}

// answerResnapshot writes the answer to a resnapshot request or its
// cancellation.
func (s *Server) answerResnapshot(w http.ResponseWriter, code int, name, result string, req worker.Resnapshot) {
	res := resnapshotResult{actionResult: actionResult{Action: "resnapshot", Kind: spec.KindSource, Name: name, Result: result},
		Resnapshot: req}
	if st, ok := s.Runtime.Status(spec.KindSource, name); ok {
		res.Status = &st
	}
	writeJSON(w, code, res)
}

// cancelResnapshot cancels a source's resnapshot request that is not done:
// the source restarts without it and streams on from its stored position.
// Rows it already read again stay on Kafka; they are harmless (upserts of
// rows as they were at the request's consistent point, followed by the
// changes since).
func (s *Server) cancelResnapshot(w http.ResponseWriter, r *http.Request) {
	h, ok := s.found(w, r, spec.KindSource)
	if !ok {
		return
	}
	req, err := s.Store.CancelResnapshot(r.Context(), h.Name, s.runtimeDone(h.Name))
	switch {
	case errors.Is(err, errNoResnapshot):
		problem(w, http.StatusConflict, "not possible now", fmt.Sprintf("source %q has no resnapshot request to cancel", h.Name), nil)
		return
	case errors.Is(err, errResnapshotDone):
		problem(w, http.StatusConflict, "not possible now",
			fmt.Sprintf("resnapshot %d of source %q is done: there is nothing to cancel", req.ID, h.Name), nil)
		return
	case err != nil:
		problem(w, http.StatusServiceUnavailable, "cannot store the cancellation", err.Error(), nil)
		return
	}
	s.Reconcile()
	s.Logger.Info("action", "action", "cancel resnapshot", "source", h.Name, "resnapshot", req.ID)
	result := fmt.Sprintf("resnapshot %d of %s cancelled; the source streams on without it", req.ID, strings.Join(req.Tables, ", "))
	s.answerResnapshot(w, http.StatusOK, h.Name, result, req)
}

// resnapshotTables checks the tables of a resnapshot request against the
// source's and returns them as schema.table, without duplicates.
func resnapshotTables(src *spec.Source, names []string) ([]string, []fieldProblem) {
	if len(names) == 0 {
		return nil, []fieldProblem{{Path: "tables", Message: "name at least one table to read again"}}
	}
	var captured []cdc.TableID
	if src.Postgres != nil {
		captured, _ = src.Postgres.TableIDs()
	}
	var out []string
	var probs []fieldProblem
	for i, n := range names {
		path := fmt.Sprintf("tables[%d]", i)
		t, err := cdc.ParseTableID(strings.TrimSpace(n), spec.DefaultSchema)
		switch {
		case err != nil:
			probs = append(probs, fieldProblem{Path: path, Message: err.Error()})
		case !slices.Contains(captured, t):
			have := make([]string, len(captured))
			for j, c := range captured {
				have[j] = c.String()
			}
			probs = append(probs, fieldProblem{Path: path,
				Message: fmt.Sprintf("source %q does not capture %s (it captures %s)", src.Name, t, strings.Join(have, ", "))})
		case !slices.Contains(out, t.String()):
			out = append(out, t.String())
		}
	}
	return out, probs
}

// runtimeDone returns the resnapshot request the runtime reports source
// finished (nil: none), which the store may not have recorded yet. It is
// asked before the store's locks are taken.
func (s *Server) runtimeDone(source string) *worker.Resnapshot {
	st, ok := s.Runtime.Status(spec.KindSource, source)
	if !ok || st.Resnapshot == nil || st.Resnapshot.State != worker.ResnapshotDone {
		return nil
	}
	req := st.Resnapshot.Resnapshot
	return &req
}

// recordResnapshots stores the completion of resnapshot requests the
// runtime finished, so the source's spec shows it across restarts.
func (s *Server) recordResnapshots(ctx context.Context) {
	for _, h := range s.Store.List(spec.KindSource) {
		if h.Resnapshot == nil || h.Resnapshot.CompletedAt != nil {
			continue
		}
		st, ok := s.Runtime.Status(spec.KindSource, h.Name)
		if !ok || st.Resnapshot == nil || !st.Resnapshot.Resnapshot.Same(h.Resnapshot) ||
			st.Resnapshot.State != worker.ResnapshotDone || st.Resnapshot.CompletedAt == nil {
			continue
		}
		if err := s.Store.CompleteResnapshot(ctx, h.Name, h.Resnapshot, *st.Resnapshot.CompletedAt); err != nil && ctx.Err() == nil {
			s.Logger.Warn("recording a completed resnapshot failed", "source", h.Name, "err", err)
		}
	}
}
