// Package observe makes a Sluice process observable (DESIGN.md section 7):
// the Prometheus metrics of its sources and pipelines, and the liveness and
// readiness answers, all served by Handler on /metrics, /healthz and
// /readyz.
//
// Metrics are named sluice_<area>_<what>_<unit>. Their labels take bounded
// values only: source, pipeline and table names from the specs, stage
// paths, operations and states; never keys or row values. Every series a
// dashboard or an alert uses exists (at zero) from the moment its source or
// pipeline starts, because a query cannot tell "nothing happened yet" from
// "not exported".
//
// The runtime packages do not import this one: capture.Runner,
// apply.Runner and transforms.Chain each declare the small interface they
// report to, and Source and Pipeline implement them.
package observe

import (
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Label names.
const (
	labelSource   = "source"
	labelPipeline = "pipeline"
	labelTable    = "table"
	labelOp       = "op"
	labelStage    = "stage"
	labelState    = "state"
)

// States are the values of the state label, as the worker names them.
var States = []string{"running", "paused", "failed", "stopped"}

// Operations counted by the op label: Debezium's letters.
var ops = []cdc.Op{cdc.OpRead, cdc.OpCreate, cdc.OpUpdate, cdc.OpDelete}

var (
	// latencyBuckets suit capture lag and end-to-end latency: from a few
	// milliseconds (a quiet system) to ten minutes (a backlog).
	latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// durationBuckets suit one destination transaction.
	durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	// batchBuckets suit records per destination transaction (1..100000).
	batchBuckets = []float64{1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000}
)

// Metrics holds the registry of one process and every metric Sluice
// exports. Create it with New; it is safe for concurrent use.
type Metrics struct {
	reg    *prometheus.Registry
	health *Health

	kafkaReachable prometheus.Gauge

	srcEvents       *prometheus.CounterVec
	srcBytes        *prometheus.CounterVec
	srcLag          *prometheus.HistogramVec
	srcCheckpoints  *prometheus.CounterVec
	srcConnected    *prometheus.GaugeVec
	srcRetained     *prometheus.GaugeVec
	srcConfirmedLag *prometheus.GaugeVec
	srcSnapDone     *prometheus.GaugeVec
	srcSnapEst      *prometheus.GaugeVec

	pipeInfo      *prometheus.GaugeVec
	pipeConsumed  *prometheus.CounterVec
	stageIn       *prometheus.CounterVec
	stageOut      *prometheus.CounterVec
	stageDropped  *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	applied       *prometheus.CounterVec
	batchSize     *prometheus.HistogramVec
	applyDuration *prometheus.HistogramVec
	endToEnd      *prometheus.HistogramVec
	lagRecords    *prometheus.GaugeVec
	pipeConnected *prometheus.GaugeVec
	pipeFailures  *prometheus.CounterVec

	mu        sync.Mutex
	sources   map[string]*Source
	pipelines map[string]*Pipeline
	units     func() []Unit
}

// New returns the metrics of a process running Sluice version, with the
// Go runtime and process collectors registered.
func New(version string) *Metrics {
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		health:    NewHealth(),
		sources:   map[string]*Source{},
		pipelines: map[string]*Pipeline{},
	}
	// Sluice needs Kafka: not ready until someone reached it (Kafka).
	m.health.Set(ComponentKafka, errors.New("not reached yet"))
	f := factory{m.reg}
	info := f.gaugeVec("sluice_build_info", "Always 1; the labels say which Sluice runs.", []string{"version", "goversion"})
	info.WithLabelValues(version, runtime.Version()).Set(1)
	m.kafkaReachable = f.gaugeVec("sluice_kafka_reachable",
		"1 while the Kafka cluster answers this process, 0 while it does not.", nil).WithLabelValues()
	m.defineSource(f)
	m.definePipeline(f)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&unitCollector{m},
		&lagCollector{m},
	)
	return m
}

// defineSource creates the per-source metrics.
func (m *Metrics) defineSource(f factory) {
	src, srcTable := []string{labelSource}, []string{labelSource, labelTable}
	m.srcEvents = f.counterVec("sluice_source_events_total",
		"Changes captured and handed to Kafka, by table and operation (r snapshot read, c insert, u update, d delete).",
		[]string{labelSource, labelTable, labelOp})
	m.srcBytes = f.counterVec("sluice_source_bytes_total",
		"Bytes produced to Kafka (keys, values and tombstones), by table.", srcTable)
	m.srcLag = f.histogramVec("sluice_source_capture_lag_seconds",
		"Time from a change's commit in the source database to Kafka's acknowledgement of it (snapshot reads excluded).",
		srcTable, latencyBuckets)
	m.srcCheckpoints = f.counterVec("sluice_source_checkpoints_total",
		"Source positions stored in Kafka and confirmed to the source database.", src)
	m.srcConnected = f.gaugeVec("sluice_source_connected",
		"1 while the source is connected to its database and capturing, 0 otherwise.", src)
	m.srcRetained = f.gaugeVec("sluice_source_slot_retained_wal_bytes",
		"WAL the source database keeps for the source's replication slots (current WAL position - oldest restart_lsn).", src)
	m.srcConfirmedLag = f.gaugeVec("sluice_source_slot_confirmed_lag_bytes",
		"Bytes of WAL between the source database's current position and the position Sluice last confirmed (confirmed_flush_lsn).", src)
	m.srcSnapDone = f.gaugeVec("sluice_source_snapshot_done_rows",
		"Rows the current or last snapshot read, by table.", srcTable)
	m.srcSnapEst = f.gaugeVec("sluice_source_snapshot_estimated_rows",
		"Rows the current or last snapshot is expected to read, by table (the planner's estimate, at least the rows read).", srcTable)
}

// definePipeline creates the per-pipeline metrics.
func (m *Metrics) definePipeline(f factory) {
	pipe := []string{labelPipeline}
	m.pipeInfo = f.gaugeVec("sluice_pipeline_info", "Always 1; the source label names the pipeline's source.",
		[]string{labelPipeline, labelSource})
	m.pipeConsumed = f.counterVec("sluice_pipeline_consumed_records_total",
		"Kafka records the pipeline consumed (tombstones included).", pipe)
	stage := []string{labelPipeline, labelStage}
	m.stageIn = f.counterVec("sluice_pipeline_stage_in_records_total",
		"Records given to a stage (decode is the first: one per Kafka record).", stage)
	m.stageOut = f.counterVec("sluice_pipeline_stage_out_records_total",
		"Records a stage returned.", stage)
	m.stageDropped = f.counterVec("sluice_pipeline_stage_dropped_records_total",
		"Records a stage turned into nothing (filtered out; decode: tombstones and truncates).", stage)
	m.deadLetters = f.counterVec("sluice_pipeline_dead_letters_total",
		"Records sent to the pipeline's dead-letter topic, by the stage that rejected them.", stage)
	m.applied = f.counterVec("sluice_pipeline_applied_records_total",
		"Records written to the destination, by destination table and operation.",
		[]string{labelPipeline, labelTable, labelOp})
	m.batchSize = f.histogramVec("sluice_pipeline_batch_size_records",
		"Records per destination transaction.", pipe, batchBuckets)
	m.applyDuration = f.histogramVec("sluice_pipeline_apply_duration_seconds",
		"Time to write one batch to the destination and commit it.", pipe, durationBuckets)
	m.endToEnd = f.histogramVec("sluice_pipeline_end_to_end_latency_seconds",
		"Time from a change's commit in the source database to its commit in the destination (snapshot reads excluded).",
		pipe, latencyBuckets)
	m.lagRecords = f.gaugeVec("sluice_pipeline_consumer_lag_records",
		"Records on Kafka the pipeline has not applied yet (at its last poll).", pipe)
	m.pipeConnected = f.gaugeVec("sluice_pipeline_connected",
		"1 while the pipeline is connected to Kafka and its destination and consuming, 0 otherwise.", pipe)
	m.pipeFailures = f.counterVec("sluice_pipeline_failures_total",
		"Pipeline sessions that ended with an error (each is retried).", pipe)
}

// Registry returns the registry, to gather from or add to.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Health returns the readiness registry the metrics report to.
func (m *Metrics) Health() *Health { return m.health }

// Kafka records whether the Kafka cluster answered (err nil) or why not.
func (m *Metrics) Kafka(err error) {
	if err == nil {
		m.kafkaReachable.Set(1)
	} else {
		m.kafkaReachable.Set(0)
	}
	m.health.Set(ComponentKafka, err)
}

// Source returns the metrics of a source capturing tables, creating the
// source's series (at zero) the first time and those of tables it did not
// capture before.
func (m *Metrics) Source(name string, tables []cdc.TableID) *Source {
	m.mu.Lock()
	s := m.sources[name]
	if s == nil {
		s = newSource(m, name)
		m.sources[name] = s
	}
	m.mu.Unlock()
	for _, t := range tables {
		s.table(t)
	}
	return s
}

// Pipeline returns the metrics of a pipeline reading from source through
// the named stages, creating the pipeline's series (at zero) the first
// time and those of stages it did not have before.
func (m *Metrics) Pipeline(name, source string, stages []string) *Pipeline {
	m.mu.Lock()
	p := m.pipelines[name]
	if p == nil {
		p = newPipeline(m, name)
		m.pipelines[name] = p
	}
	if p.source != source {
		if p.source != "" {
			m.pipeInfo.DeleteLabelValues(name, p.source)
		}
		p.source = source
		m.pipeInfo.WithLabelValues(name, source).Set(1)
	}
	m.mu.Unlock()
	p.stage(StageDecode)
	for _, s := range stages {
		p.stage(s)
	}
	return p
}

// Unit is a source or pipeline as the process runs it, for the state and
// restart metrics and for readiness.
type Unit struct {
	Kind     string // "source" or "pipeline"
	Name     string
	State    string // one of States
	Restarts int    // times the unit was restarted after a failure
	// LastError is the unit's most recent failure.
	LastError string
}

// WatchUnits makes every scrape export the state and restarts of the units
// list returns (sluice_source_state, sluice_pipeline_state,
// sluice_source_restarts_total, sluice_pipeline_restarts_total), and makes
// a failed unit count against readiness even when it failed before it
// could report anything (a secret that does not resolve).
func (m *Metrics) WatchUnits(list func() []Unit) {
	m.mu.Lock()
	m.units = list
	m.mu.Unlock()
}

// Ready returns nil when the process is ready: every component of Health
// is, and no unit is failed. Otherwise the error lists, one per line, each
// component or unit that is not ready and why.
func (m *Metrics) Ready() error {
	reasons := m.health.reasons()
	m.mu.Lock()
	list := m.units
	m.mu.Unlock()
	if list != nil {
		for _, u := range list() {
			c := u.Kind + "/" + u.Name
			switch {
			case u.State == "failed":
				reasons[c] = "failed, waiting to be retried: " + u.LastError
			case u.State == "running" && !m.health.has(c):
				reasons[c] = "starting"
			}
		}
	}
	return joinReasons(reasons)
}

var (
	stateDesc = map[string]*prometheus.Desc{
		"source": prometheus.NewDesc("sluice_source_state",
			"1 for the state the source is in (running, paused, failed: waiting to be retried, stopped), 0 for the others.",
			[]string{labelSource, labelState}, nil),
		"pipeline": prometheus.NewDesc("sluice_pipeline_state",
			"1 for the state the pipeline is in (running, paused, failed: waiting to be retried, stopped), 0 for the others.",
			[]string{labelPipeline, labelState}, nil),
	}
	restartsDesc = map[string]*prometheus.Desc{
		"source": prometheus.NewDesc("sluice_source_restarts_total",
			"Times the source was restarted after a failure.", []string{labelSource}, nil),
		"pipeline": prometheus.NewDesc("sluice_pipeline_restarts_total",
			"Times the pipeline was restarted after a failure.", []string{labelPipeline}, nil),
	}
	lagSecondsDesc = prometheus.NewDesc("sluice_pipeline_consumer_lag_seconds",
		"How far behind Kafka the pipeline is: the age of the newest record it consumed while records were left to apply, 0 when caught up.",
		[]string{labelPipeline}, nil)
)

// unitCollector exports the worker's view of its units at scrape time.
type unitCollector struct{ m *Metrics }

func (c *unitCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range stateDesc {
		ch <- d
	}
	for _, d := range restartsDesc {
		ch <- d
	}
}

func (c *unitCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	list := c.m.units
	c.m.mu.Unlock()
	if list == nil {
		return
	}
	for _, u := range list() {
		sd, rd := stateDesc[u.Kind], restartsDesc[u.Kind]
		if sd == nil {
			continue
		}
		for _, s := range States {
			v := 0.0
			if s == u.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(sd, prometheus.GaugeValue, v, u.Name, s)
		}
		ch <- prometheus.MustNewConstMetric(rd, prometheus.CounterValue, float64(u.Restarts), u.Name)
	}
}

// lagCollector computes each pipeline's lag in seconds at scrape time, so
// it keeps growing while a pipeline is stuck.
type lagCollector struct{ m *Metrics }

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagSecondsDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	ps := make([]*Pipeline, 0, len(c.m.pipelines))
	for _, p := range c.m.pipelines {
		ps = append(ps, p)
	}
	c.m.mu.Unlock()
	now := time.Now()
	for _, p := range ps {
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, p.lagSeconds(now), p.name)
	}
}

// factory registers the metrics it makes.
type factory struct{ reg *prometheus.Registry }

func (f factory) counterVec(name, help string, labels []string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) gaugeVec(name, help string, labels []string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) histogramVec(name, help string, labels []string, buckets []float64) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(v)
	return v
}
