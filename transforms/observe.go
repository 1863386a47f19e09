package transforms

// StageObserver is told what each stage of a Chain did in one Apply call:
// in records it was given, out records it returned, dropped inputs it
// turned into nothing (a record it rejected counts in in only). It is
// called from the goroutines that call Apply (a pipeline calls it from
// several at once), so it must be safe for concurrent use, and must not
// block.
type StageObserver interface {
	ObserveStage(stage string, in, out, dropped int)
}

// Observe makes c report to o from now on (nil: stop reporting). Call it
// before Apply is used, not concurrently with it.
func (c *Chain) Observe(o StageObserver) { c.observer = o }

// StageNames returns the stages' names (their spec path and kind, as in
// "stages[1].rename"), in order.
func (c *Chain) StageNames() []string {
	names := make([]string, len(c.stages))
	for i, s := range c.stages {
		names[i] = s.name
	}
	return names
}

func (c *Chain) observe(stage string, in, out, dropped int) {
	if c.observer != nil {
		c.observer.ObserveStage(stage, in, out, dropped)
	}
}
