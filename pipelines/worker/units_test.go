package worker

import (
	"encoding/json"
	"errors"
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
	r.resnapshotEvent(1, true)
	if got := state(); got != ResnapshotDone || r.status.Resnapshot.CompletedAt == nil {
		t.Fatalf("done: %+v", r.status.Resnapshot)
	}
	r.resnapshotEvent(1, false) // a restart that finds it done reports done again, not started
	if got := state(); got != ResnapshotDone {
		t.Fatalf("a late start event: state %q, want done", got)
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
