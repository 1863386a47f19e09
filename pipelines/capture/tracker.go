package capture

import (
	"sync"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// tracker turns out-of-order produce acknowledgements into the highest
// checkpoint below which every record is acknowledged. Records get
// increasing sequence numbers when they are handed to the producer;
// checkpoints are pinned to the sequence number of the last record before
// them. Safe for concurrent use: produce callbacks call done from the
// client's goroutines.
type tracker struct {
	mu     sync.Mutex
	next   uint64          // last sequence number handed out
	low    uint64          // every seq <= low is acknowledged
	acked  map[uint64]bool // acknowledged seqs above low
	cps    []pinned        // checkpoints not yet ready, in seq order
	failed error           // first produce failure; acking stops there
	// unsaved is the newest ready checkpoint not yet confirmed saved: it is
	// handed out again until saved is called, so a store that failed (or
	// was cancelled by a stop) does not lose it.
	unsaved cdc.Position
}

type pinned struct {
	seq uint64
	cp  cdc.Position
}

func newTracker() *tracker { return &tracker{acked: map[uint64]bool{}} }

// add hands out the next sequence number.
func (t *tracker) add() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	return t.next
}

// checkpoint pins cp behind every record added so far.
func (t *tracker) checkpoint(cp cdc.Position) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cps = append(t.cps, pinned{seq: t.next, cp: cp})
}

// done marks seq acknowledged, or records the failure. After a failure
// nothing beyond it ever becomes ready: the run stops and restarts from the
// last stored checkpoint.
func (t *tracker) done(seq uint64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if t.failed == nil {
			t.failed = err
		}
		return
	}
	if t.failed != nil {
		return
	}
	if seq != t.low+1 {
		t.acked[seq] = true
		return
	}
	t.low++
	for t.acked[t.low+1] {
		delete(t.acked, t.low+1)
		t.low++
	}
}

// ready returns the newest checkpoint whose records are all acknowledged
// and that is not saved yet; nil when there is none.
func (t *tracker) ready() cdc.Position {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := 0
	for ; i < len(t.cps) && t.cps[i].seq <= t.low; i++ {
		t.unsaved = t.cps[i].cp
	}
	t.cps = t.cps[i:]
	return t.unsaved
}

// saved records that cp (as returned by ready) is stored.
func (t *tracker) saved(cp cdc.Position) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if string(t.unsaved) == string(cp) {
		t.unsaved = nil
	}
}

// err returns the first produce failure.
func (t *tracker) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
