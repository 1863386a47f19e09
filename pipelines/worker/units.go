package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/pipelines/apply"
	"github.com/sluice-cdc/sluice/pipelines/capture"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// State is the state of a source or pipeline, desired or actual.
type State string

// The states. Desired states are running, paused and stopped; a unit is
// also failed while it waits to be retried after an error.
const (
	StateRunning State = "running"
	StatePaused  State = "paused"
	StateStopped State = "stopped"
	StateFailed  State = "failed"
)

// Unit is a source or pipeline that should exist on this worker.
type Unit struct {
	Kind    spec.Kind
	Name    string
	Version int // the spec version: a new version restarts the unit
	Desired State
	// Source is the source spec, of a source unit or of a pipeline's
	// source.
	Source *spec.Source
	// Pipeline is the pipeline spec of a pipeline unit.
	Pipeline *spec.Pipeline
	// SourceVersion is the version of a pipeline's source spec: its tables
	// decide the pipeline's topics, so a new one restarts the pipeline.
	SourceVersion int
	// Generation restarts a running unit when it changes (a restart
	// action), even with the same spec.
	Generation int
	// Resnapshot is a source's latest resnapshot request, done, cancelled
	// or not: a new one (another ID) or its cancellation restarts the
	// source, which reads its tables again unless its stored position says
	// it did (a cancelled request is not handed to the source).
	Resnapshot *Resnapshot
}

// Resnapshot is an operator's request to read some tables of a running
// source again while the others keep streaming.
type Resnapshot struct {
	// ID increases with every request of a source.
	ID int64 `json:"id"`
	// Nonce is random: with the ID it identifies the request in the
	// source's stored position, which is kept apart from the IDs (see
	// postgres.ResnapshotRequest).
	Nonce string `json:"nonce,omitempty"`
	// Tables are schema.table names the source captures.
	Tables      []string  `json:"tables"`
	RequestedAt time.Time `json:"requested_at"`
	// CompletedAt is set once the source's position recording the
	// request is durable.
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	// CancelledAt is set when an operator cancelled the request before it
	// completed: the source streams on without it.
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
}

// Same tells whether r and o are the same request (ID and nonce); nil is
// no request.
func (r *Resnapshot) Same(o *Resnapshot) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.ID == o.ID && r.Nonce == o.Nonce
}

// active is the request the source should be given: r, unless it was
// cancelled.
func (r *Resnapshot) active() *Resnapshot {
	if r == nil || r.CancelledAt != nil {
		return nil
	}
	return r
}

// Resnapshot states.
const (
	// ResnapshotPending: the source is not carrying it out: it has not
	// started it yet (restarting for it, failing before it got there, or
	// stopped), or it stopped or failed while at it and starts it again
	// when it runs again.
	ResnapshotPending = "pending"
	// ResnapshotRunning: the source has been carrying it out since
	// StartedAt (catching up to the consistent point, then reading).
	ResnapshotRunning = "running"
	ResnapshotDone    = "done" // complete and durable
	// ResnapshotCancelled: an operator cancelled it before it completed.
	ResnapshotCancelled = "cancelled"
)

// ResnapshotStatus is the latest resnapshot request and how far it got.
// A unit's status points to one that is never changed once it is set
// (changes make a new one), because Status hands out copies of the status
// that share it and are read without the unit's lock.
type ResnapshotStatus struct {
	Resnapshot
	State string `json:"state"`
	// StartedAt is when the source last started carrying it out.
	StartedAt *time.Time `json:"started_at,omitempty"`
}

// Status is what a unit is doing.
type Status struct {
	Kind     spec.Kind `json:"kind"`
	Name     string    `json:"name"`
	Version  int       `json:"version"`
	Desired  State     `json:"desired_state"`
	State    State     `json:"state"`
	Since    time.Time `json:"since"`
	Restarts int       `json:"restarts"`
	// LastError and LastErrorAt are the most recent failure, kept after
	// the unit recovers.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// Resnapshot is a source's latest resnapshot request, if any.
	Resnapshot *ResnapshotStatus `json:"resnapshot,omitempty"`
}

type unitKey struct {
	kind spec.Kind
	name string
}

// running is a unit the worker knows, running or not.
type running struct {
	unit   Unit
	log    *slog.Logger
	cancel context.CancelFunc // nil when not running; guarded by Worker.mu
	done   chan struct{}      // closed when the supervisor returned

	mu     sync.Mutex
	status Status
}

func (r *running) setState(s State, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status.State != s {
		r.status.State, r.status.Since = s, time.Now().UTC()
	}
	if rs := r.status.Resnapshot; s != StateRunning && rs != nil && rs.State == ResnapshotRunning {
		// The source stopped or failed before the request was done: it
		// starts it again when it runs again. Copy on write.
		c := *rs
		c.State = ResnapshotPending
		r.status.Resnapshot = &c
	}
	if err != nil {
		now := time.Now().UTC()
		r.status.LastError, r.status.LastErrorAt = err.Error(), &now
	}
}

// resnapshotEvent records what the source said about resnapshot id:
// started (done false) or complete and durable.
func (r *running) resnapshotEvent(id int64, done bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.status.Resnapshot
	if old == nil || old.ID != id || old.State == ResnapshotCancelled {
		return
	}
	// Copy on write: statuses handed out share the old value.
	rs := *old
	now := time.Now().UTC()
	switch {
	case done && rs.State != ResnapshotDone:
		rs.State = ResnapshotDone
		if rs.CompletedAt == nil {
			rs.CompletedAt = &now
		}
	case !done && rs.State == ResnapshotPending:
		rs.State, rs.StartedAt = ResnapshotRunning, &now
	default:
		return
	}
	r.status.Resnapshot = &rs
}

// setResnapshot makes req the unit's latest resnapshot request. r.mu is
// held.
func (r *running) setResnapshot(req *Resnapshot) {
	if req == nil {
		r.status.Resnapshot = nil
		return
	}
	var rs ResnapshotStatus
	if old := r.status.Resnapshot; old != nil && old.Resnapshot.Same(req) {
		rs = *old
	} else {
		rs = ResnapshotStatus{Resnapshot: *req, State: ResnapshotPending}
		rs.Tables = append([]string(nil), req.Tables...)
	}
	switch {
	case req.CompletedAt != nil:
		rs.State, rs.CompletedAt = ResnapshotDone, req.CompletedAt
	case req.CancelledAt != nil && rs.State != ResnapshotDone:
		rs.State, rs.CancelledAt = ResnapshotCancelled, req.CancelledAt
	}
	// Copy on write: statuses handed out share the old value.
	r.status.Resnapshot = &rs
}

func (r *running) restarted() {
	r.mu.Lock()
	r.status.Restarts++
	r.mu.Unlock()
}

// runEnv is what units share once Kafka is reachable.
type runEnv struct {
	opts   []kgo.Opt
	topics *broker.Topics
	store  *broker.Store
}

// Set replaces the units that should exist. Serve starts what is new or
// changed, stops what is gone, paused or stopped, and keeps the rest
// running untouched.
func (w *Worker) Set(units []Unit) {
	w.mu.Lock()
	w.desired = append([]Unit(nil), units...)
	if w.changed == nil {
		w.changed = make(chan struct{}, 1)
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *Worker) signal() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changed == nil {
		w.changed = make(chan struct{}, 1)
	}
	return w.changed
}

// Statuses returns the status of every unit the worker knows, sorted by
// kind and name.
func (w *Worker) Statuses() []Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Status, 0, len(w.units))
	for _, r := range w.units {
		r.mu.Lock()
		out = append(out, r.status)
		r.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind > out[j].Kind // sources first
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Status returns one unit's status.
func (w *Worker) Status(kind spec.Kind, name string) (Status, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.units[unitKey{kind, name}]
	if !ok {
		return Status{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, true
}

// reconcile makes the running units match the desired ones.
func (w *Worker) reconcile(ctx context.Context, env *runEnv) {
	w.mu.Lock()
	desired := map[unitKey]Unit{}
	for _, u := range w.desired {
		desired[unitKey{u.Kind, u.Name}] = u
	}
	if w.units == nil {
		w.units = map[unitKey]*running{}
	}
	if w.stats == nil {
		w.stats, w.pipelineStats = map[string]*capture.Stats{}, map[string]*apply.Stats{}
	}
	type stopping struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var stop []stopping
	for k, r := range w.units {
		u, ok := desired[k]
		if r.cancel != nil && (!ok || u.Desired != StateRunning || u.Version != r.unit.Version ||
			u.SourceVersion != r.unit.SourceVersion || u.Generation != r.unit.Generation ||
			!u.Resnapshot.active().Same(r.unit.Resnapshot.active())) {
			stop = append(stop, stopping{r.cancel, r.done})
			r.cancel = nil
		}
		if !ok {
			delete(w.units, k)
		}
	}
	w.mu.Unlock()
	for _, s := range stop {
		s.cancel()
		<-s.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, u := range desired {
		r := w.units[k]
		if r == nil {
			r = &running{log: w.Logger.With(string(lower(u.Kind)), u.Name)}
			r.status = Status{Kind: u.Kind, Name: u.Name, State: StateStopped, Since: time.Now().UTC()}
			w.units[k] = r
		}
		r.unit = u
		r.mu.Lock()
		r.status.Version, r.status.Desired = u.Version, u.Desired
		if u.Kind == spec.KindSource {
			r.setResnapshot(u.Resnapshot)
		}
		if u.Desired != StateRunning && r.cancel == nil {
			if r.status.State != u.Desired {
				r.status.State, r.status.Since = u.Desired, time.Now().UTC()
			}
		}
		r.mu.Unlock()
		if u.Desired != StateRunning || r.cancel != nil {
			continue
		}
		w.start(ctx, env, r)
	}
}

func lower(k spec.Kind) string {
	switch k {
	case spec.KindSource:
		return "source"
	case spec.KindPipeline:
		return "pipeline"
	}
	return string(k)
}

// start runs r under a supervisor. w.mu is held.
func (w *Worker) start(ctx context.Context, env *runEnv, r *running) {
	uctx, cancel := context.WithCancel(ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	u := r.unit
	var run func(context.Context) error
	switch u.Kind {
	case spec.KindSource:
		stats := w.stats[u.Name]
		if stats == nil {
			stats = &capture.Stats{}
			w.stats[u.Name] = stats
		}
		run = func(ctx context.Context) error {
			if w.runSourceFunc != nil {
				return w.runSourceFunc(ctx, u, u.Resnapshot.active())
			}
			return w.runSource(ctx, u.Source, u.Resnapshot.active(), r.resnapshotEvent, env, stats, r.log)
		}
	case spec.KindPipeline:
		stats := w.pipelineStats[u.Name]
		if stats == nil {
			stats = &apply.Stats{}
			w.pipelineStats[u.Name] = stats
		}
		run = func(ctx context.Context) error {
			if u.Source == nil {
				return fmt.Errorf("source %q is not defined", u.Pipeline.From.Source)
			}
			return w.runPipeline(ctx, u.Pipeline, u.Source, env, stats, r.log)
		}
	default:
		cancel()
		close(r.done)
		r.cancel = nil
		return
	}
	go func() {
		defer close(r.done)
		w.supervise(uctx, r, run)
		r.setState(StateStopped, nil)
	}()
}

// stopAll stops every running unit and waits for them.
func (w *Worker) stopAll() {
	w.mu.Lock()
	var done []chan struct{}
	for _, r := range w.units {
		if r.cancel != nil {
			r.cancel()
			r.cancel = nil
			done = append(done, r.done)
		}
	}
	w.mu.Unlock()
	for _, d := range done {
		<-d
	}
}
