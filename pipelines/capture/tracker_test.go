package capture

import (
	"errors"
	"testing"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

func TestTracker(t *testing.T) {
	type step struct {
		add  int    // records to add
		cp   string // checkpoint to pin after them ("" none)
		done []uint64
		fail uint64 // a seq whose produce fails
		want string // ready() after the step ("" nil)
		keep bool   // do not mark the ready checkpoint saved (its store failed)
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{
			{add: 2, cp: "a", done: []uint64{1, 2}, want: "a"},
			{add: 1, cp: "b", done: []uint64{3}, want: "b"},
		}},
		{"out of order waits for the gap", []step{
			{add: 3, cp: "a", done: []uint64{2, 3}, want: ""},
			{done: []uint64{1}, want: "a"},
		}},
		{"newest ready checkpoint wins", []step{
			{add: 1, cp: "a"},
			{add: 1, cp: "b"},
			{add: 1, cp: "c", done: []uint64{1, 2}, want: "b"},
			{done: []uint64{3}, want: "c"},
		}},
		{"checkpoint without records is ready at once", []step{
			{cp: "idle", want: "idle"},
		}},
		{"empty checkpoint after pending records waits", []step{
			{add: 2},
			{cp: "idle", done: []uint64{2}, want: ""},
			{done: []uint64{1}, want: "idle"},
		}},
		{"an unsaved checkpoint is handed out again", []step{
			{add: 1, cp: "a", done: []uint64{1}, want: "a", keep: true},
			{want: "a"},
			{want: ""},
		}},
		{"a newer checkpoint supersedes an unsaved one", []step{
			{add: 1, cp: "a", done: []uint64{1}, want: "a", keep: true},
			{add: 1, cp: "b", done: []uint64{2}, want: "b"},
			{want: ""},
		}},
		{"a failure stops acking beyond it", []step{
			{add: 1, cp: "a", done: []uint64{1}, want: "a"},
			{add: 2, cp: "b", fail: 2, done: []uint64{3}, want: ""},
			{done: []uint64{2}, want: ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker()
			for i, s := range tt.steps {
				for range s.add {
					tr.add()
				}
				if s.cp != "" {
					tr.checkpoint(cdc.Position(s.cp))
				}
				if s.fail != 0 {
					tr.done(s.fail, errors.New("boom"))
				}
				for _, d := range s.done {
					tr.done(d, nil)
				}
				got := tr.ready()
				if string(got) != s.want {
					t.Fatalf("step %d: ready() = %q, want %q", i, got, s.want)
				}
				if got != nil && !s.keep {
					tr.saved(got)
				}
			}
		})
	}
}
