package main

import (
	"fmt"
	"strings"
)

func (r *Report) printApply(p func(string, ...any), a *ApplyResult) {
	p("")
	p("Apply: %d rows (%d records on Kafka) applied into an empty table of a fresh database of a second server",
		a.Rows, a.KafkaRecords)
	p("  (as in production: on the source's server, its walsender would decode all the WAL the sink writes),")
	p("  table bench(id bigint pk, a int, b text, c numeric(12,2), d timestamptz); sink.batch_rows %d, create_tables", a.BatchRows)
	p("  (the backlog was captured by a first sluice run with the source only, %d-row source transactions;", a.TxRows)
	p("   each sluice run below starts on a copy of its data dir with the source, idle, and one pipeline)")
	p("  on Kafka: %.0f MB of key+value JSON, %.0f B/record; broker data dir %.0f MB (compressed batches)",
		float64(a.KafkaBytes)/1e6, ratio(float64(a.KafkaBytes), float64(a.KafkaRecords)), float64(a.KafkaDiskBytes)/1e6)
	run := func(name string, x *ApplyRun) {
		if x == nil {
			return
		}
		p("  %-12s %8.0f rows/s  %.1fs from \"pipeline consuming\" (startup %.1fs, first batch at %.1fs, %.0f rows/s from process start)",
			name, x.RowsPerSec, x.ApplySeconds, x.StartupSeconds, x.FirstBatchSeconds, x.TotalRowsPerSec)
		p("               CPU %.1fs, peak RSS %.0f MiB; destination %d rows, matches source: %v", x.CPUSeconds,
			mib(x.PeakRSSBytes), x.DestinationRows, x.MatchesSource)
		p("               destination table as created: %s", x.DestinationTable)
	}
	bare := func(name string, b *BareApply) {
		if b == nil {
			return
		}
		p("  %-12s %8.0f rows/s  %.1fs  %s, %d rows each; matches source: %v", name, b.RowsPerSec, b.Seconds,
			b.Method, b.BatchRows, b.MatchesSource)
	}
	run("sluice upsert", a.Upsert)
	bare("bare upsert", a.BareUpsert)
	if a.Upsert != nil && a.BareUpsert != nil {
		p("  sluice upsert / bare upsert = %.0f%%   target >= %.0f%%: %s", 100*a.UpsertRatio, 100*targetApplyUpsertRatio,
			verdict(r.Targets["apply_upsert_ratio"]))
	}
	run("sluice insert", a.Insert)
	bare("bare COPY", a.BareCopy)
	if a.Insert != nil && a.BareCopy != nil {
		p("  sluice insert / bare COPY = %.0f%%   target >= %.0f%%: %s", 100*a.InsertRatio, 100*targetApplyInsertRatio,
			verdict(r.Targets["apply_insert_ratio"]))
	}
	if len(a.Rounds) > 1 {
		var ups, ins []string
		pct := func(ok bool, x float64) string {
			if !ok {
				return "-" // a run of the round failed
			}
			return fmt.Sprintf("%.0f%%", 100*x)
		}
		for _, r := range a.Rounds {
			ups = append(ups, pct(r.Upsert != nil && r.BareUpsert != nil, r.UpsertRatio))
			ins = append(ins, pct(r.Insert != nil && r.BareCopy != nil, r.InsertRatio))
		}
		p("  %d rounds, each sluice run timed just before its bare ceiling; the figures above are the median round's.", len(a.Rounds))
		p("  upsert / bare upsert by round: %s; insert / bare COPY by round: %s",
			strings.Join(ups, " "), strings.Join(ins, " "))
	}
	p("  (sluice rows/s: from the pipeline's \"pipeline consuming\" log line, i.e. without loading the embedded broker")
	p("   from disk and opening the sink, until its offsets in the destination reach the end of the topic. Bare: rows")
	p("   read into memory first, on a connection made before the clock starts, until the last statement returns.)")
}

func (r *Report) printApplyLatency(p func(string, ...any), l *ApplyLatencyResult) {
	p("")
	p("Apply latency: %d rows/s target, %.0f rows/s achieved (%d rows in %.1fs, a transaction every 10 ms,",
		l.TargetRowsPerSec, l.AchievedRowsPerSec, l.Rows, l.Seconds)
	p("  synchronous_commit = on); one sluice process: source, embedded broker, upsert pipeline; %d rows applied,", l.Applied)
	p("  the last %.1fs after the last insert; CPU %.1fs, peak RSS %.0f MiB", l.CatchUpSeconds, l.SluiceCPUSeconds,
		mib(l.SluicePeakRSSBytes))
	q := l.EndToEnd
	p("  %-22s p50 %6.1f  p95 %6.1f  p99 %6.1f  max %6.1f  mean %6.1f ms", "source -> destination", q.P50, q.P95, q.P99, q.Max, q.Mean)
	p("  p99 source -> destination < %.0f ms: %s", targetApplyP99Ms, verdict(r.Targets["apply_p99_latency"]))
	p("  (per row, destination applied_at - source created_at, both clock_timestamp() at INSERT, on one host clock:")
	p("   the source transaction commits just after its INSERT, the destination batch just after its INSERT ... SELECT)")
}
