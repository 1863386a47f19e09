package observe

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// StageDecode is the stage label of decoding Kafka records, the first step
// of every pipeline.
const StageDecode = "decode"

// Pipeline is the metrics of one pipeline. It implements apply.Metrics and
// transforms.StageObserver; its methods are safe for concurrent use and
// never block.
type Pipeline struct {
	m         *Metrics
	name      string
	component string
	source    string // guarded by Metrics.mu

	consumed  prometheus.Counter
	batchSize prometheus.Observer
	duration  prometheus.Observer
	endToEnd  prometheus.Observer
	lag       prometheus.Gauge
	connected prometheus.Gauge
	failures  prometheus.Counter

	mu         sync.RWMutex
	stages     map[string]*stageSeries
	lagRecords int64
	behind     time.Time // Kafka time of the newest consumed record while lagging
}

type stageSeries struct {
	in, out, dropped, dead prometheus.Counter
}

func newPipeline(m *Metrics, name string) *Pipeline {
	p := &Pipeline{
		m: m, name: name, component: "pipeline/" + name,
		consumed:  m.pipeConsumed.WithLabelValues(name),
		batchSize: m.batchSize.WithLabelValues(name),
		duration:  m.applyDuration.WithLabelValues(name),
		endToEnd:  m.endToEnd.WithLabelValues(name),
		lag:       m.lagRecords.WithLabelValues(name),
		connected: m.pipeConnected.WithLabelValues(name),
		failures:  m.pipeFailures.WithLabelValues(name),
		stages:    map[string]*stageSeries{},
	}
	return p
}

// stage returns the series of a stage, creating them at zero.
func (p *Pipeline) stage(name string) *stageSeries {
	p.mu.RLock()
	s := p.stages[name]
	p.mu.RUnlock()
	if s != nil {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s = p.stages[name]; s != nil {
		return s
	}
	s = &stageSeries{
		in:      p.m.stageIn.WithLabelValues(p.name, name),
		out:     p.m.stageOut.WithLabelValues(p.name, name),
		dropped: p.m.stageDropped.WithLabelValues(p.name, name),
		dead:    p.m.deadLetters.WithLabelValues(p.name, name),
	}
	p.stages[name] = s
	return s
}

// Connecting reports that the pipeline starts.
func (p *Pipeline) Connecting() {
	p.connected.Set(0)
	p.m.health.Set(p.component, errConnecting)
}

// Connected reports that a session consumes: the destination is open and
// the partitions are assigned.
func (p *Pipeline) Connected() {
	p.connected.Set(1)
	p.m.health.Set(p.component, nil)
}

// Disconnected reports that a session ended: with its error, or nil when
// the pipeline was stopped (it then no longer counts for readiness).
func (p *Pipeline) Disconnected(err error) {
	p.connected.Set(0)
	if err == nil {
		p.m.health.Remove(p.component)
		return
	}
	p.failures.Inc()
	p.m.health.Set(p.component, err)
}

// Consumed counts Kafka records polled.
func (p *Pipeline) Consumed(n int) { p.consumed.Add(float64(n)) }

// ObserveStage counts what a stage did: in records given to it, out
// records it returned, dropped inputs it turned into nothing.
func (p *Pipeline) ObserveStage(stage string, in, out, dropped int) {
	s := p.stage(stage)
	s.in.Add(float64(in))
	s.out.Add(float64(out))
	s.dropped.Add(float64(dropped))
}

// DeadLettered counts records a stage rejected that went to the
// dead-letter topic.
func (p *Pipeline) DeadLettered(stage string, n int) { p.stage(stage).dead.Add(float64(n)) }

type tableOp struct {
	table cdc.TableID
	op    cdc.Op
}

// Applied records a committed batch: its records by destination table and
// operation, its size, how long the write took, and each change's
// end-to-end latency (snapshot reads left out).
func (p *Pipeline) Applied(records []cdc.Record, took time.Duration) {
	now := time.Now()
	p.batchSize.Observe(float64(len(records)))
	p.duration.Observe(took.Seconds())
	counts := map[tableOp]int{}
	for i := range records {
		r := &records[i]
		counts[tableOp{r.Table, r.Op}]++
		if r.Op != cdc.OpRead && !r.CommitTime.IsZero() {
			p.endToEnd.Observe(now.Sub(r.CommitTime).Seconds())
		}
	}
	for k, n := range counts {
		p.m.applied.WithLabelValues(p.name, k.table.String(), k.op.String()).Add(float64(n))
	}
}

// Lag records the records on Kafka not applied yet and, when there are
// some, the Kafka time of the newest record consumed: the pipeline is at
// least that far behind.
func (p *Pipeline) Lag(records int64, newestConsumed time.Time) {
	p.lag.Set(float64(records))
	p.mu.Lock()
	p.lagRecords, p.behind = records, newestConsumed
	p.mu.Unlock()
}

func (p *Pipeline) lagSeconds(now time.Time) float64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.lagRecords <= 0 || p.behind.IsZero() {
		return 0
	}
	return max(0, now.Sub(p.behind).Seconds())
}
