package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
)

// actionResult is the answer to an action.
type actionResult struct {
	Action string         `json:"action"`
	Kind   spec.Kind      `json:"kind"`
	Name   string         `json:"name"`
	Result string         `json:"result"`
	Status *worker.Status `json:"status,omitempty"`
}

// Actions per kind, as routed by POST /v1/<kind>/{name}/{action}.
var (
	sourceActions   = []string{"start", "stop", "pause", "resume", "restart", "restore", "validate"}
	pipelineActions = []string{"start", "stop", "pause", "resume", "restart", "restore", "validate", "clear", "replay", "reprocess"}
)

func (s *Server) action(kind spec.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		act := chi.URLParam(r, "action")
		allowed := sourceActions
		if kind == spec.KindPipeline {
			allowed = pipelineActions
		}
		known := false
		for _, a := range allowed {
			known = known || a == act
		}
		if !known {
			if kind == spec.KindSource {
				allowed = append(allowed[:len(allowed):len(allowed)], "resnapshot") // routed on its own
			}
			problem(w, http.StatusNotFound, "unknown action",
				fmt.Sprintf("%s actions are: %s", strings.ToLower(string(kind)), strings.Join(allowed, ", ")), nil)
			return
		}
		h, ok := s.found(w, r, kind)
		if !ok {
			return
		}
		var result string
		var err error
		switch act {
		case "start", "resume":
			result, err = s.setDesired(r.Context(), h, worker.StateRunning)
		case "stop":
			result, err = s.setDesired(r.Context(), h, worker.StateStopped)
		case "pause":
			result, err = s.setDesired(r.Context(), h, worker.StatePaused)
		case "restart":
			if h.Desired != worker.StateRunning {
				err = fmt.Errorf("%w: it is %s; start it instead", errConflict, h.Desired)
				break
			}
			s.restart(kind, h.Name)
			result = "restarting"
		case "restore":
			var body struct {
				Version int `json:"version"`
			}
			if !decodeJSON(w, r, &body) {
				return
			}
			var nh Head
			if nh, err = s.Store.Restore(r.Context(), kind, h.Name, body.Version); err == nil {
				s.Reconcile()
				result = fmt.Sprintf("version %d restored as version %d", body.Version, nh.Version)
			}
		case "validate":
			s.validate(w, r, kind, h)
			return
		case "clear":
			var body struct {
				Tables []string `json:"tables"`
			}
			if !decodeJSON(w, r, &body) {
				return
			}
			result, err = s.clear(r.Context(), h, body.Tables)
		case "replay":
			var body replayRequest
			if !decodeJSON(w, r, &body) {
				return
			}
			result, err = s.replay(r.Context(), h, body)
		case "reprocess":
			result, err = s.reprocess(r.Context(), h)
		}
		switch {
		case errors.Is(err, errConflict):
			problem(w, http.StatusConflict, "not possible now", err.Error(), nil)
			return
		case errors.Is(err, errBadRequest):
			problem(w, http.StatusBadRequest, "invalid request", err.Error(), nil)
			return
		case errors.Is(err, ErrNotFound):
			problem(w, http.StatusNotFound, "not found", err.Error(), nil)
			return
		case err != nil:
			problem(w, http.StatusBadGateway, act+" failed", err.Error(), nil)
			return
		}
		s.Logger.Info("action", "action", act, strings.ToLower(string(kind)), h.Name, "result", result)
		res := actionResult{Action: act, Kind: kind, Name: h.Name, Result: result}
		if st, ok := s.Runtime.Status(kind, h.Name); ok {
			res.Status = &st
		}
		writeJSON(w, http.StatusOK, res)
	}
}

var errBadRequest = errors.New("bad request")

func (s *Server) setDesired(ctx context.Context, h Head, st worker.State) (string, error) {
	if _, err := s.Store.SetDesired(ctx, h.Kind, h.Name, st); err != nil {
		return "", err
	}
	s.Reconcile()
	return "desired state " + string(st), nil
}

// resolvedPipeline returns a pipeline's spec with secrets resolved and its
// source's spec.
func (s *Server) resolvedPipeline(name string) (*spec.Pipeline, *spec.Source, error) {
	p, err := s.pipeline(name)
	if err != nil {
		return nil, nil, err
	}
	src, err := s.source(p.From.Source)
	if err != nil {
		return nil, nil, fmt.Errorf("source %q: %w", p.From.Source, err)
	}
	res, err := p.Resolved()
	if err != nil {
		return nil, nil, err
	}
	return res, src, nil
}

// stoppedNow fails with a conflict unless the pipeline is stopped or
// paused, desired and actually.
func (s *Server) stoppedNow(h Head) error {
	st, ok := s.Runtime.Status(h.Kind, h.Name)
	if h.Desired == worker.StateRunning || (ok && (st.State == worker.StateRunning || st.State == worker.StateFailed)) {
		return fmt.Errorf("%w: pipeline %q is running; stop or pause it first (or use replay with clear)", errConflict, h.Name)
	}
	return nil
}

// clear empties the destination tables a pipeline writes and forgets its
// offsets, so that its next start rebuilds them from Kafka.
func (s *Server) clear(ctx context.Context, h Head, names []string) (string, error) {
	s.actionMu.Lock()
	defer s.actionMu.Unlock()
	if err := s.stoppedNow(h); err != nil {
		return "", err
	}
	return s.clearTables(ctx, h, names)
}

func (s *Server) clearTables(ctx context.Context, h Head, names []string) (string, error) {
	p, src, err := s.resolvedPipeline(h.Name)
	if err != nil {
		return "", err
	}
	var tables []cdc.TableID
	if len(names) > 0 {
		for i, n := range names {
			t, err := cdc.ParseTableID(n, spec.DefaultSchema)
			if err != nil {
				return "", fmt.Errorf("%w: tables[%d]: %v", errBadRequest, i, err)
			}
			tables = append(tables, t)
		}
	} else if tables, err = destinationTables(p, src); err != nil {
		return "", fmt.Errorf("%w: %v", errBadRequest, err)
	}
	sink, err := worker.NewSink(s.Instance, p, s.Logger.With("pipeline", h.Name))
	if err != nil {
		return "", err
	}
	defer sink.Close(context.WithoutCancel(ctx))
	if err := sink.Clear(ctx, tables); err != nil {
		return "", err
	}
	ids := make([]string, len(tables))
	for i, t := range tables {
		ids[i] = t.String()
	}
	return "cleared " + strings.Join(ids, ", ") + "; offsets reset to the start", nil
}

// replayRequest says where a replay starts.
type replayRequest struct {
	// From is earliest (default), timestamp or offsets.
	From string `json:"from"`
	// Timestamp, for from=timestamp, in RFC 3339.
	Timestamp string `json:"timestamp"`
	// Offsets, for from=offsets: where each partition starts; partitions
	// not named start at the beginning.
	Offsets []struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
	} `json:"offsets"`
	// Clear empties the pipeline's destination tables first.
	Clear bool `json:"clear"`
	// Tables are the tables to clear (default: derived from the stages).
	Tables []string `json:"tables"`
}

// replay stops a pipeline, optionally clears its tables, moves its offsets
// and starts it again (in the state it was in before).
func (s *Server) replay(ctx context.Context, h Head, req replayRequest) (string, error) {
	var offs cdc.Offsets
	switch req.From {
	case "", "earliest":
		if req.Timestamp != "" || len(req.Offsets) > 0 {
			return "", fmt.Errorf("%w: timestamp and offsets go with from=timestamp and from=offsets", errBadRequest)
		}
		offs = cdc.Offsets{}
	case "timestamp":
		ts, err := time.Parse(time.RFC3339, req.Timestamp)
		if err != nil {
			return "", fmt.Errorf("%w: timestamp: want RFC 3339, e.g. 2026-11-23T10:00:00Z", errBadRequest)
		}
		p, src, err := s.resolvedPipeline(h.Name)
		if err != nil {
			return "", err
		}
		tables, err := p.SourceTables(src)
		if err != nil {
			return "", err
		}
		if offs, err = s.offsetsAt(ctx, worker.PipelineTopics(s.Instance, src.Name, tables), ts); err != nil {
			return "", err
		}
	case "offsets":
		if len(req.Offsets) == 0 {
			return "", fmt.Errorf("%w: from=offsets needs offsets", errBadRequest)
		}
		offs = cdc.Offsets{}
		for _, o := range req.Offsets {
			if o.Offset < 0 || o.Topic == "" {
				return "", fmt.Errorf("%w: offsets: want topic and a non-negative offset", errBadRequest)
			}
			offs[cdc.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
		}
	default:
		return "", fmt.Errorf("%w: from: want earliest, timestamp or offsets", errBadRequest)
	}
	if req.Clear && req.From != "" && req.From != "earliest" {
		return "", fmt.Errorf("%w: clear goes with from=earliest (a cleared table must be rebuilt from the start)", errBadRequest)
	}
	s.actionMu.Lock()
	defer s.actionMu.Unlock()
	was := h.Desired
	if was == worker.StateRunning {
		if _, err := s.Store.SetDesired(ctx, h.Kind, h.Name, worker.StateStopped); err != nil {
			return "", err
		}
		s.Reconcile()
		if err := s.waitStopped(ctx, h.Kind, h.Name); err != nil {
			return "", err
		}
	}
	restart := func() {
		if was == worker.StateRunning {
			if _, err := s.Store.SetDesired(context.WithoutCancel(ctx), h.Kind, h.Name, worker.StateRunning); err != nil {
				s.Logger.Error("replay: cannot start the pipeline again", "pipeline", h.Name, "err", err)
			}
			s.Reconcile()
		}
	}
	defer restart()
	var done []string
	if req.Clear {
		msg, err := s.clearTables(ctx, h, req.Tables)
		if err != nil {
			return "", err
		}
		done = append(done, msg)
	}
	p, _, err := s.resolvedPipeline(h.Name)
	if err != nil {
		return "", err
	}
	sink, err := worker.NewSink(s.Instance, p, s.Logger.With("pipeline", h.Name))
	if err != nil {
		return "", err
	}
	defer sink.Close(context.WithoutCancel(ctx))
	if err := sink.ResetOffsets(ctx, offs); err != nil {
		return "", err
	}
	done = append(done, fmt.Sprintf("replaying from %s (%d partitions positioned)", orDefault(req.From, "earliest"), len(offs)))
	return strings.Join(done, "; "), nil
}

// reprocess runs a pipeline's dead letters through its current spec: it
// stops the pipeline if it runs, reprocesses, and starts it again.
func (s *Server) reprocess(ctx context.Context, h Head) (string, error) {
	p, err := s.pipeline(h.Name)
	if err != nil {
		return "", err
	}
	src, err := s.source(p.From.Source)
	if err != nil {
		return "", fmt.Errorf("source %q: %w", p.From.Source, err)
	}
	s.actionMu.Lock()
	defer s.actionMu.Unlock()
	if h.Desired == worker.StateRunning {
		if _, err := s.Store.SetDesired(ctx, h.Kind, h.Name, worker.StateStopped); err != nil {
			return "", err
		}
		s.Reconcile()
		defer func() {
			if _, err := s.Store.SetDesired(context.WithoutCancel(ctx), h.Kind, h.Name, worker.StateRunning); err != nil {
				s.Logger.Error("reprocess: cannot start the pipeline again", "pipeline", h.Name, "err", err)
			}
			s.Reconcile()
		}()
		if err := s.waitStopped(ctx, h.Kind, h.Name); err != nil {
			return "", err
		}
	}
	taken, failed, err := s.Runtime.ReprocessDeadLetters(ctx, p, src)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("reprocessed %d dead letters: %d applied, %d failed again (back in the dead-letter topic)",
		taken, taken-failed, failed), nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
