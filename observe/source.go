package observe

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Source is the metrics of one source. It implements capture.Metrics and
// takes the PostgreSQL source's slot and snapshot reports; its methods are
// safe for concurrent use and never block.
type Source struct {
	m         *Metrics
	name      string
	component string

	checkpoints prometheus.Counter
	connected   prometheus.Gauge
	retained    prometheus.Gauge
	confirmed   prometheus.Gauge

	mu     sync.RWMutex
	tables map[cdc.TableID]*sourceTable
}

// sourceTable is the series of one captured table, resolved once so the
// capture path does not look labels up for every change.
type sourceTable struct {
	events  [cdc.OpTruncate + 1]prometheus.Counter // by cdc.Op; nil for ops not created up front
	bytes   prometheus.Counter
	lag     prometheus.Observer
	snapDn  prometheus.Gauge
	snapEst prometheus.Gauge
}

func newSource(m *Metrics, name string) *Source {
	s := &Source{
		m: m, name: name, component: "source/" + name,
		checkpoints: m.srcCheckpoints.WithLabelValues(name),
		connected:   m.srcConnected.WithLabelValues(name),
		retained:    m.srcRetained.WithLabelValues(name),
		confirmed:   m.srcConfirmedLag.WithLabelValues(name),
		tables:      map[cdc.TableID]*sourceTable{},
	}
	return s
}

// table returns the series of t, creating them at zero.
func (s *Source) table(t cdc.TableID) *sourceTable {
	s.mu.RLock()
	st := s.tables[t]
	s.mu.RUnlock()
	if st != nil {
		return st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st = s.tables[t]; st != nil {
		return st
	}
	name := t.String()
	st = &sourceTable{
		bytes:   s.m.srcBytes.WithLabelValues(s.name, name),
		lag:     s.m.srcLag.WithLabelValues(s.name, name),
		snapDn:  s.m.srcSnapDone.WithLabelValues(s.name, name),
		snapEst: s.m.srcSnapEst.WithLabelValues(s.name, name),
	}
	for _, op := range ops {
		st.events[op] = s.m.srcEvents.WithLabelValues(s.name, name, op.String())
	}
	s.tables[t] = st
	return st
}

// errConnecting is the readiness reason of a unit that has not connected
// yet.
var errConnecting = errors.New("connecting")

// Connecting reports that a run of the source starts.
func (s *Source) Connecting() {
	s.connected.Set(0)
	s.m.health.Set(s.component, errConnecting)
}

// Connected reports that the source is open and capturing.
func (s *Source) Connected() {
	s.connected.Set(1)
	s.m.health.Set(s.component, nil)
}

// Disconnected reports that a run ended: with its error, or nil when the
// source was stopped (it then no longer counts for readiness).
func (s *Source) Disconnected(err error) {
	s.connected.Set(0)
	if err == nil {
		s.m.health.Remove(s.component)
		return
	}
	s.m.health.Set(s.component, err)
}

// Captured counts a change handed to Kafka and the bytes produced for it.
func (s *Source) Captured(t cdc.TableID, op cdc.Op, bytes int) {
	st := s.table(t)
	if int(op) < len(st.events) && st.events[op] != nil {
		st.events[op].Inc()
	} else {
		s.m.srcEvents.WithLabelValues(s.name, t.String(), op.String()).Inc()
	}
	st.bytes.Add(float64(bytes))
}

// Acked records the capture lag of a change Kafka acknowledged. Snapshot
// reads are left out: their commit time is the snapshot's start.
func (s *Source) Acked(t cdc.TableID, op cdc.Op, lag time.Duration) {
	if op == cdc.OpRead {
		return
	}
	s.table(t).lag.Observe(lag.Seconds())
}

// Checkpointed counts a stored checkpoint.
func (s *Source) Checkpointed() { s.checkpoints.Inc() }

// Slot records the WAL the source's replication slots hold on the server
// and how far the confirmed position is behind the server's.
func (s *Source) Slot(retainedBytes, confirmedLagBytes int64) {
	s.retained.Set(float64(retainedBytes))
	s.confirmed.Set(float64(confirmedLagBytes))
}

// SnapshotProgress records the rows a snapshot read from t so far and the
// rows it expects to read.
func (s *Source) SnapshotProgress(t cdc.TableID, done, estimated int64) {
	st := s.table(t)
	st.snapDn.Set(float64(done))
	st.snapEst.Set(float64(max(done, estimated)))
}
