package worker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// TestResnapshotStatus follows a request through the states a source
// reports, and checks that events of another request are ignored and that
// a completion recorded in the control state shows as done.
func TestResnapshotStatus(t *testing.T) {
	r := &running{}
	state := func() string {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.status.Resnapshot == nil {
			return ""
		}
		return r.status.Resnapshot.State
	}
	set := func(req *Resnapshot) {
		r.mu.Lock()
		r.setResnapshot(req)
		r.mu.Unlock()
	}
	set(&Resnapshot{ID: 1, Tables: []string{"public.a"}})
	if got := state(); got != ResnapshotPending {
		t.Fatalf("new request: state %q, want pending", got)
	}
	r.resnapshotEvent(2, true) // not this request
	if got := state(); got != ResnapshotPending {
		t.Fatalf("after another request's event: state %q, want pending", got)
	}
	r.resnapshotEvent(1, false)
	if got := state(); got != ResnapshotRunning || r.status.Resnapshot.StartedAt == nil {
		t.Fatalf("started: %+v", r.status.Resnapshot)
	}
	first := *r.status.Resnapshot.StartedAt
	r.setState(StateFailed, errors.New("connection lost"))
	if got := state(); got != ResnapshotPending {
		t.Fatalf("after the source failed while at it: state %q, want pending", got)
	}
	time.Sleep(time.Millisecond)
	r.setState(StateRunning, nil)
	if got := state(); got != ResnapshotPending {
		t.Fatalf("the source runs again but has not started the request: state %q, want pending", got)
	}
	r.resnapshotEvent(1, false)
	if got := state(); got != ResnapshotRunning || !r.status.Resnapshot.StartedAt.After(first) {
		t.Fatalf("started again: %+v, first started at %s", r.status.Resnapshot, first)
	}
	r.resnapshotEvent(1, true)
	if got := state(); got != ResnapshotDone || r.status.Resnapshot.CompletedAt == nil {
		t.Fatalf("done: %+v", r.status.Resnapshot)
	}
	r.resnapshotEvent(1, false) // a restart that finds it done reports done again, not started
	if got := state(); got != ResnapshotDone {
		t.Fatalf("a late start event: state %q, want done", got)
	}
	r.setState(StateStopped, nil)
	if got := state(); got != ResnapshotDone {
		t.Fatalf("a done request after the source stopped: state %q, want done", got)
	}
	set(&Resnapshot{ID: 2, Tables: []string{"public.b"}})
	if got := state(); got != ResnapshotPending {
		t.Fatalf("next request: state %q, want pending", got)
	}
	at := time.Now()
	set(&Resnapshot{ID: 2, Tables: []string{"public.b"}, CompletedAt: &at})
	if got := state(); got != ResnapshotDone {
		t.Fatalf("completion recorded in the control state: state %q, want done", got)
	}
	var none *Resnapshot
	if !none.Same(nil) || none.Same(&Resnapshot{ID: 2}) || (&Resnapshot{ID: 2, Nonce: "a"}).Same(&Resnapshot{ID: 2, Nonce: "b"}) ||
		!(&Resnapshot{ID: 2, Nonce: "a"}).Same(&Resnapshot{ID: 2, Nonce: "a"}) {
		t.Fatal("Same does not compare ID and nonce")
	}
	// The same ID with another nonce is another request: pending again.
	set(&Resnapshot{ID: 2, Nonce: "other", Tables: []string{"public.b"}})
	if got := state(); got != ResnapshotPending {
		t.Fatalf("another request with the same ID: state %q, want pending", got)
	}
}

// TestResnapshotStatusNoRace reads statuses (as the HTTP handlers,
// publishStatus and recordResnapshots do, without the unit's lock) while
// the source's goroutines report progress and the reconciler hands over new
// requests. Run with -race: a status must never share memory that is
// changed afterwards.
func TestResnapshotStatusNoRace(t *testing.T) {
	r := &running{status: Status{Kind: spec.KindSource, Name: "src"}}
	w := &Worker{units: map[unitKey]*running{{spec.KindSource, "src"}: r}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for id := int64(1); id <= 300; id++ {
			r.mu.Lock()
			r.setResnapshot(&Resnapshot{ID: id, Tables: []string{"public.a"}})
			r.mu.Unlock()
			r.resnapshotEvent(id, false)
			r.setState(StateFailed, errors.New("boom"))
			r.resnapshotEvent(id, false)
			r.resnapshotEvent(id, true)
			at := time.Now()
			r.mu.Lock()
			r.setResnapshot(&Resnapshot{ID: id, Tables: []string{"public.a"}, CompletedAt: &at})
			r.mu.Unlock()
		}
	})
	read := func(st Status) {
		if _, err := json.Marshal(st); err != nil {
			t.Error(err)
		}
		if rs := st.Resnapshot; rs != nil && rs.State == ResnapshotDone && rs.CompletedAt == nil {
			t.Errorf("resnapshot %d is done without a completion time", rs.ID)
		}
	}
	for {
		select {
		case <-done:
			wg.Wait()
			return
		default:
		}
		st, _ := w.Status(spec.KindSource, "src")
		read(st)
		for _, st := range w.Statuses() {
			read(st)
		}
	}
}

// TestReconcileRestartsSourceForResnapshot checks when the reconciler
// restarts a running source for its resnapshot request: for a new request
// (another ID, or the same ID with another nonce) and for a cancellation,
// with the request the source gets (none once cancelled); not when only
// the completion of the request it runs is recorded, nor for the same
// request again.
func TestReconcileRestartsSourceForResnapshot(t *testing.T) {
	var mu sync.Mutex
	var starts []*Resnapshot
	stops := 0
	w := &Worker{Logger: slog.New(slog.DiscardHandler)}
	w.runSourceFunc = func(ctx context.Context, _ Unit, resnap *Resnapshot) error {
		mu.Lock()
		starts = append(starts, resnap)
		mu.Unlock()
		<-ctx.Done()
		mu.Lock()
		stops++
		mu.Unlock()
		return nil
	}
	defer w.stopAll()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	req1 := &Resnapshot{ID: 1, Nonce: "a", Tables: []string{"public.t"}}
	done1 := &Resnapshot{ID: 1, Nonce: "a", Tables: []string{"public.t"}, CompletedAt: &at}
	req2 := &Resnapshot{ID: 2, Nonce: "b", Tables: []string{"public.t"}}
	cancelled2 := &Resnapshot{ID: 2, Nonce: "b", Tables: []string{"public.t"}, CancelledAt: &at}
	rebuilt := &Resnapshot{ID: 1, Nonce: "c", Tables: []string{"public.u"}}
	for i, step := range []struct {
		req     *Resnapshot
		restart bool
		gets    *Resnapshot // the request the (re)started source gets
	}{
		{nil, true, nil}, // the first start
		{req1, true, req1},
		{req1, false, nil},
		{done1, false, nil},
		{req2, true, req2},
		{cancelled2, true, nil},
		{cancelled2, false, nil},
		{rebuilt, true, rebuilt},
	} {
		mu.Lock()
		wantStarts, stopsBefore := len(starts), stops
		mu.Unlock()
		if step.restart {
			wantStarts++
		}
		w.Set([]Unit{{Kind: spec.KindSource, Name: "src", Version: 1, Desired: StateRunning,
			Source: &spec.Source{Name: "src"}, Resnapshot: step.req}})
		w.reconcile(t.Context(), &runEnv{})
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			n, stopped := len(starts), stops-stopsBefore
			var last *Resnapshot
			if n > 0 {
				last = starts[n-1]
			}
			mu.Unlock()
			if n == wantStarts {
				if wantStopped := map[bool]int{true: 1, false: 0}[step.restart && i > 0]; stopped != wantStopped {
					t.Fatalf("step %d: the source was stopped %d times, want %d", i, stopped, wantStopped)
				}
				if step.restart && !last.Same(step.gets) {
					t.Fatalf("step %d: the source got request %+v, want %+v", i, last, step.gets)
				}
				break
			}
			if n > wantStarts || time.Now().After(deadline) {
				t.Fatalf("step %d: %d starts, want %d", i, n, wantStarts)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
