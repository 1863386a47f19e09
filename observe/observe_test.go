package observe

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// families gathers m and returns its sluice_* families by name.
func families(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "sluice_") {
			out[f.GetName()] = f
		}
	}
	return out
}

// value returns the value of the series of name with exactly labels.
func value(t *testing.T, m *Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	f := families(t, m)[name]
	if f == nil {
		t.Fatalf("%s is not exported", name)
	}
	for _, s := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range s.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		switch {
		case s.Counter != nil:
			return s.GetCounter().GetValue()
		case s.Gauge != nil:
			return s.GetGauge().GetValue()
		case s.Histogram != nil:
			return float64(s.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("%s has no series %v", name, labels)
	return 0
}

var t1 = cdc.TableID{Schema: "public", Name: "t1"}

// TestSeriesExistBeforeTraffic checks that every series the dashboards
// and alerts use exists, at zero, as soon as a source and a pipeline
// start, and that labels only ever take bounded values.
func TestSeriesExistBeforeTraffic(t *testing.T) {
	m := New("test")
	m.Source("src", []cdc.TableID{t1})
	m.Pipeline("copy", "src", []string{"stages[0].rename"})
	m.WatchUnits(func() []Unit {
		return []Unit{{Kind: "source", Name: "src", State: "running"}, {Kind: "pipeline", Name: "copy", State: "paused"}}
	})
	want := []string{
		"sluice_build_info", "sluice_kafka_reachable",
		"sluice_source_events_total", "sluice_source_bytes_total", "sluice_source_capture_lag_seconds",
		"sluice_source_checkpoints_total", "sluice_source_connected", "sluice_source_slot_retained_wal_bytes",
		"sluice_source_slot_confirmed_lag_bytes", "sluice_source_snapshot_done_rows", "sluice_source_snapshot_estimated_rows",
		"sluice_source_state", "sluice_source_restarts_total",
		"sluice_pipeline_info", "sluice_pipeline_consumed_records_total", "sluice_pipeline_stage_in_records_total",
		"sluice_pipeline_stage_out_records_total", "sluice_pipeline_stage_dropped_records_total",
		"sluice_pipeline_dead_letters_total", "sluice_pipeline_batch_size_records", "sluice_pipeline_apply_duration_seconds",
		"sluice_pipeline_end_to_end_latency_seconds", "sluice_pipeline_consumer_lag_records",
		"sluice_pipeline_consumer_lag_seconds", "sluice_pipeline_connected", "sluice_pipeline_failures_total",
		"sluice_pipeline_state", "sluice_pipeline_restarts_total",
	}
	fams := families(t, m)
	for _, name := range want {
		if fams[name] == nil {
			t.Errorf("%s is not exported before any traffic", name)
		}
	}
	allowed := []string{"source", "pipeline", "table", "op", "stage", "state", "version", "goversion"}
	for name, f := range fams {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if !slices.Contains(allowed, l.GetName()) {
					t.Errorf("%s has label %q: labels must take bounded values", name, l.GetName())
				}
			}
		}
	}
	if v := value(t, m, "sluice_pipeline_dead_letters_total", map[string]string{"pipeline": "copy", "stage": "stages[0].rename"}); v != 0 {
		t.Errorf("dead letters = %v before any traffic", v)
	}
	if v := value(t, m, "sluice_pipeline_state", map[string]string{"pipeline": "copy", "state": "paused"}); v != 1 {
		t.Errorf("paused state = %v, want 1", v)
	}
	if v := value(t, m, "sluice_pipeline_state", map[string]string{"pipeline": "copy", "state": "running"}); v != 0 {
		t.Errorf("running state of a paused pipeline = %v, want 0", v)
	}
}

func TestSourceMetrics(t *testing.T) {
	m := New("test")
	s := m.Source("src", nil)
	s.Captured(t1, cdc.OpRead, 100)
	s.Captured(t1, cdc.OpUpdate, 50)
	s.Captured(t1, cdc.OpTruncate, 0) // not created up front, still counted
	s.Acked(t1, cdc.OpRead, time.Hour)
	s.Acked(t1, cdc.OpUpdate, 20*time.Millisecond)
	s.Checkpointed()
	s.Slot(1<<20, 512)
	s.SnapshotProgress(t1, 30, 10)

	src := map[string]string{"source": "src"}
	tbl := map[string]string{"source": "src", "table": "public.t1"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sluice_source_events_total", map[string]string{"source": "src", "table": "public.t1", "op": "r"}, 1},
		{"sluice_source_events_total", map[string]string{"source": "src", "table": "public.t1", "op": "u"}, 1},
		{"sluice_source_events_total", map[string]string{"source": "src", "table": "public.t1", "op": "t"}, 1},
		{"sluice_source_events_total", map[string]string{"source": "src", "table": "public.t1", "op": "d"}, 0},
		{"sluice_source_bytes_total", tbl, 150},
		{"sluice_source_capture_lag_seconds", tbl, 1}, // the snapshot read is left out
		{"sluice_source_checkpoints_total", src, 1},
		{"sluice_source_slot_retained_wal_bytes", src, 1 << 20},
		{"sluice_source_slot_confirmed_lag_bytes", src, 512},
		{"sluice_source_snapshot_done_rows", tbl, 30},
		{"sluice_source_snapshot_estimated_rows", tbl, 30}, // never below the rows read
	} {
		if got := value(t, m, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestPipelineMetrics(t *testing.T) {
	m := New("test")
	p := m.Pipeline("copy", "src", nil)
	p.Consumed(3)
	p.ObserveStage(StageDecode, 3, 2, 1)
	p.DeadLettered("stages[1].filter", 2)
	now := time.Now()
	dst := cdc.TableID{Schema: "v3", Name: "t"}
	p.Applied([]cdc.Record{
		{Table: dst, Op: cdc.OpRead, CommitTime: now.Add(-time.Hour)},
		{Table: dst, Op: cdc.OpUpdate, CommitTime: now.Add(-time.Second)},
		{Table: dst, Op: cdc.OpUpdate, CommitTime: now.Add(-time.Second)},
	}, 10*time.Millisecond)
	pipe := map[string]string{"pipeline": "copy"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sluice_pipeline_consumed_records_total", pipe, 3},
		{"sluice_pipeline_stage_in_records_total", map[string]string{"pipeline": "copy", "stage": "decode"}, 3},
		{"sluice_pipeline_stage_out_records_total", map[string]string{"pipeline": "copy", "stage": "decode"}, 2},
		{"sluice_pipeline_stage_dropped_records_total", map[string]string{"pipeline": "copy", "stage": "decode"}, 1},
		{"sluice_pipeline_dead_letters_total", map[string]string{"pipeline": "copy", "stage": "stages[1].filter"}, 2},
		{"sluice_pipeline_applied_records_total", map[string]string{"pipeline": "copy", "table": "v3.t", "op": "u"}, 2},
		{"sluice_pipeline_applied_records_total", map[string]string{"pipeline": "copy", "table": "v3.t", "op": "r"}, 1},
		{"sluice_pipeline_batch_size_records", pipe, 1},
		{"sluice_pipeline_apply_duration_seconds", pipe, 1},
		{"sluice_pipeline_end_to_end_latency_seconds", pipe, 2}, // the snapshot read is left out
	} {
		if got := value(t, m, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	p.Lag(0, now.Add(-time.Minute))
	if got := value(t, m, "sluice_pipeline_consumer_lag_seconds", pipe); got != 0 {
		t.Errorf("lag seconds while caught up = %v, want 0", got)
	}
	p.Lag(10, now.Add(-time.Minute))
	if got := value(t, m, "sluice_pipeline_consumer_lag_seconds", pipe); got < 60 || got > 70 {
		t.Errorf("lag seconds = %v, want about 60", got)
	}
	if got := value(t, m, "sluice_pipeline_consumer_lag_records", pipe); got != 10 {
		t.Errorf("lag records = %v, want 10", got)
	}
}

// TestReadiness follows a process through start, connection, a failure
// and a stop, reading /healthz and /readyz as a probe would.
func TestReadiness(t *testing.T) {
	m := New("test")
	srv := httptest.NewServer(Handler(m))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	expect := func(wantCode int, wantBody ...string) {
		t.Helper()
		code, body := get("/readyz")
		if code != wantCode {
			t.Fatalf("/readyz = %d %q, want %d", code, body, wantCode)
		}
		for _, w := range wantBody {
			if !strings.Contains(body, w) {
				t.Fatalf("/readyz body %q does not contain %q", body, w)
			}
		}
	}

	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	m.Kafka(errors.New("dial tcp 127.0.0.1:9: connection refused"))
	src := m.Source("src", nil)
	src.Connecting()
	expect(http.StatusServiceUnavailable, "kafka: dial tcp", "source/src: connecting")

	m.Kafka(nil)
	src.Connected()
	expect(http.StatusOK, "ready")

	var units []Unit
	m.WatchUnits(func() []Unit { return units })
	src.Disconnected(errors.New("open: connect to 127.0.0.1:5432/app:\nrefused"))
	units = []Unit{{Kind: "source", Name: "src", State: "failed", LastError: "open: refused"}}
	expect(http.StatusServiceUnavailable, "source/src: failed, waiting to be retried: open: refused")

	units = []Unit{{Kind: "source", Name: "src", State: "stopped"}}
	src.Disconnected(nil) // stopped on purpose: no longer counts
	expect(http.StatusOK)

	code, body := get("/metrics")
	if code != http.StatusOK || !strings.Contains(body, "sluice_kafka_reachable 1") {
		t.Fatalf("/metrics = %d, body without sluice_kafka_reachable 1:\n%s", code, body)
	}
}
