package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

func TestParseApplyFlags(t *testing.T) {
	o, err := parseFlags([]string{"-apply-rows", "5000", "-apply-batch-rows", "1000", "-apply-rounds", "5", "-skip", "apply-latency"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.applyRows != 5000 || o.applyBatchRows != 1000 || o.applyRounds != 5 || !o.skip["apply-latency"] || o.skip["apply"] {
		t.Errorf("parsed %+v", o)
	}
	for _, args := range [][]string{
		{"-apply-rows", "0"},
		{"-apply-batch-rows", "0"},
		{"-apply-batch-rows", "100001"},
		{"-apply-rounds", "0"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

func TestApplySpecsParse(t *testing.T) {
	text := sourceSpec("bench") + pipelineSpec("apply_upsert", "bench", spec.SinkUpsert, true, 5000)
	t.Setenv("SRC_DSN", "postgres://x@y/src")
	t.Setenv("DST_DSN", "postgres://x@y/dst")
	specs, err := spec.Parse([]byte(text), "specs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 {
		t.Fatalf("got %d specs", len(specs))
	}
	p, ok := specs[1].(*spec.Pipeline)
	if !ok || p.Name != "apply_upsert" || p.Sink.Mode != spec.SinkUpsert || !p.Sink.CreateTables || p.Sink.BatchRows != 5000 {
		t.Errorf("pipeline %+v", specs[1])
	}
}

func TestLogLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.log")
	earlier := `time=2026-01-02T03:04:04.000Z level=INFO msg="pipeline consuming" pipeline=apply_upsert topics=1` + "\n"
	run := `time=2026-01-02T03:04:05.123Z level=INFO msg="sluice server starting" instance=bench
time=2026-01-02T03:04:06.456Z level=INFO msg="pipeline consuming" pipeline=apply_upsert topics=1 partitions=1 resumed=false
time=2026-01-02T03:04:07.000Z level=WARN msg="pipeline interrupted; retrying from the offsets stored in the destination" pipeline=apply_upsert err=boom
`
	if err := os.WriteFile(path, []byte(earlier+run), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &sluiceProc{logPath: path, logStart: int64(len(earlier))}
	got, err := p.logTime("apply_upsert", "pipeline consuming")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 1, 2, 3, 4, 6, 456e6, time.UTC); !got.Equal(want) {
		t.Errorf("logTime = %v, want %v", got, want)
	}
	if _, err := p.logTime("apply_insert", "pipeline consuming"); err == nil {
		t.Error("logTime found a line of another pipeline")
	}
	line, err := p.failureLine("apply_upsert")
	if err != nil || !strings.Contains(line, "err=boom") {
		t.Errorf("failureLine = %q, %v", line, err)
	}
	if line, _ := p.failureLine("apply_insert"); line != "" {
		t.Errorf("failureLine of another pipeline = %q", line)
	}
}

func TestCopyDir(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copy")
	if err := os.MkdirAll(filepath.Join(src, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := copyDir(src, dst); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dst, "a", "b", "f"))
	if err != nil || string(b) != "data" {
		t.Errorf("copied file: %q, %v", b, err)
	}
	if n, err := dirSize(dst); err != nil || n != 4 {
		t.Errorf("dirSize = %d, %v", n, err)
	}
}

func TestApplyMedians(t *testing.T) {
	round := func(up, in float64) ApplyRound {
		return ApplyRound{Upsert: &ApplyRun{RowsPerSec: up}, BareUpsert: &BareApply{RowsPerSec: 1},
			Insert: &ApplyRun{RowsPerSec: in}, BareCopy: &BareApply{RowsPerSec: 1}, UpsertRatio: up, InsertRatio: in}
	}
	for _, tc := range []struct {
		name           string
		rounds         []ApplyRound
		wantUp, wantIn float64
	}{
		{"one", []ApplyRound{round(0.6, 0.2)}, 0.6, 0.2},
		{"three", []ApplyRound{round(0.9, 0.1), round(0.6, 0.3), round(0.7, 0.2)}, 0.7, 0.2},
		{"even: the lower middle", []ApplyRound{round(0.9, 0.4), round(0.6, 0.1), round(0.7, 0.3), round(0.8, 0.2)}, 0.7, 0.2},
		{"incomplete rounds do not count", []ApplyRound{round(0.5, 0.5), {UpsertRatio: 0.1, Upsert: &ApplyRun{}}, round(0.8, 0.1)}, 0.5, 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &ApplyResult{Rounds: tc.rounds}
			a.pickMedians()
			if a.UpsertRatio != tc.wantUp || a.InsertRatio != tc.wantIn {
				t.Errorf("ratios %v, %v; want %v, %v", a.UpsertRatio, a.InsertRatio, tc.wantUp, tc.wantIn)
			}
			if a.Upsert == nil || a.Upsert.RowsPerSec != tc.wantUp || a.Insert == nil || a.Insert.RowsPerSec != tc.wantIn {
				t.Errorf("the runs reported are not the median rounds': %+v %+v", a.Upsert, a.Insert)
			}
		})
	}
	a := &ApplyResult{}
	a.pickMedians()
	if a.Upsert != nil || a.UpsertRatio != 0 {
		t.Errorf("no rounds: %+v", a)
	}
}
