package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// ApplyResult is the apply of a backlog already on Kafka into an empty
// destination table: by a Sluice pipeline in upsert and in insert mode, next
// to the ceilings of each, a bare pgx multi-row INSERT ... ON CONFLICT and a
// bare COPY of the same rows.
type ApplyResult struct {
	Rows   int `json:"rows"`
	TxRows int `json:"source_rows_per_transaction"`
	// BatchRows is the pipelines' sink.batch_rows.
	BatchRows int `json:"sink_batch_rows"`
	// KafkaRecords is the end offset of the source topic once captured.
	KafkaRecords int64 `json:"kafka_records"`
	// KafkaBytes is key+value bytes summed over the topic (uncompressed
	// JSON: what the pipeline decodes); KafkaDiskBytes is the size of the
	// embedded broker's data directory (compressed batches, zstd by default).
	KafkaBytes     int64 `json:"kafka_bytes"`
	KafkaDiskBytes int64 `json:"kafka_disk_bytes"`
	// LoadSeconds is the source load while Sluice captured it (not compared).
	LoadSeconds float64 `json:"load_seconds"`

	// Rounds are the timed runs, in order. The host's speed drifts over
	// minutes (a shared VM), so each Sluice run is timed right before its
	// bare ceiling, and the ratios below are the median over the rounds.
	Rounds []ApplyRound `json:"rounds"`

	// Upsert and BareUpsert are the round with the median upsert ratio;
	// Insert and BareCopy the round with the median insert ratio.
	Upsert     *ApplyRun  `json:"upsert,omitempty"`
	Insert     *ApplyRun  `json:"insert,omitempty"`
	BareUpsert *BareApply `json:"bare_upsert,omitempty"`
	BareCopy   *BareApply `json:"bare_copy,omitempty"`

	UpsertRatio float64 `json:"upsert_ratio"` // median Sluice upsert rows/s over bare upsert rows/s
	InsertRatio float64 `json:"insert_ratio"` // median Sluice insert rows/s over bare COPY rows/s
}

// ApplyRound is one round of the apply run: Sluice in upsert mode, the
// bare upsert, Sluice in insert mode, the bare COPY, back to back.
type ApplyRound struct {
	Upsert *ApplyRun `json:"upsert,omitempty"`
	// BareUpsert is multi-row INSERT ... ON CONFLICT (id) DO UPDATE,
	// BareUpsertBatch rows a statement, each in its own transaction.
	BareUpsert *BareApply `json:"bare_upsert,omitempty"`
	Insert     *ApplyRun  `json:"insert,omitempty"`
	// BareCopy is one binary COPY of every row.
	BareCopy *BareApply `json:"bare_copy,omitempty"`

	UpsertRatio float64 `json:"upsert_ratio"`
	InsertRatio float64 `json:"insert_ratio"`
}

// ApplyRun is one `sluice server` run whose pipeline applies the whole
// backlog. Times are from starting the process.
type ApplyRun struct {
	Mode     string `json:"mode"`
	Pipeline string `json:"pipeline"`
	// StartupSeconds: until the pipeline logged "pipeline consuming"
	// (embedded broker loaded from disk, sink open, offsets table created,
	// partitions assigned).
	StartupSeconds float64 `json:"startup_seconds"`
	// FirstBatchSeconds: until the first batch was seen committed.
	FirstBatchSeconds float64 `json:"first_batch_seconds"`
	// TotalSeconds: until the stored offsets reached the end of the topic.
	TotalSeconds float64 `json:"total_seconds"`
	// ApplySeconds is TotalSeconds - StartupSeconds: what RowsPerSec and
	// the ratio use.
	ApplySeconds     float64 `json:"apply_seconds"`
	RowsPerSec       float64 `json:"rows_per_sec"`
	TotalRowsPerSec  float64 `json:"total_rows_per_sec"`
	CPUSeconds       float64 `json:"sluice_cpu_seconds"`
	PeakRSSBytes     int64   `json:"sluice_peak_rss_bytes"`
	DestinationRows  int64   `json:"destination_rows"`
	MatchesSource    bool    `json:"matches_source"`
	DestinationTable string  `json:"destination_table"`
}

// BareApply is a bare pgx load of the same rows, read into memory first.
type BareApply struct {
	Method          string  `json:"method"`
	BatchRows       int     `json:"batch_rows"`
	Seconds         float64 `json:"seconds"`
	RowsPerSec      float64 `json:"rows_per_sec"`
	DestinationRows int64   `json:"destination_rows"`
	MatchesSource   bool    `json:"matches_source"`
}

const (
	applyScenario   = "apply"     // work subdirectory: the data dir all apply runs share
	applySourceDB   = "apply_src" // the captured database
	applyTable      = "bench"     // source and destination table
	bareUpsertBatch = 1000        // rows per statement of the bare upsert
)

// benchColumns are the columns of the bench table, in order.
var benchColumns = []string{"id", "a", "b", "c", "d"}

// sourceSpec is the Source of every apply run: it streams table (no
// snapshot) of the database at ${env:SRC_DSN}.
func sourceSpec(table string) string {
	return fmt.Sprintf(specTemplate, sourceName, "public."+table)
}

// pipelineSpec is a Pipeline applying table from the bench source into the
// database at ${env:DST_DSN}.
func pipelineSpec(name, table string, mode spec.SinkMode, createTables bool, batchRows int) string {
	return fmt.Sprintf(`---
kind: Pipeline
name: %s
from: {source: %s, tables: [public.%s]}
sink:
  postgres: {dsn: "${env:DST_DSN}"}
  mode: %s
  create_tables: %v
  batch_rows: %d
`, name, sourceName, table, mode, createTables, batchRows)
}

// runApply puts the backlog on Kafka (a first Sluice run with the source
// only), then, o.applyRounds times, times a Sluice run per sink mode
// applying it into a fresh database, each followed by the bare load of the
// same rows into another fresh database.
func runApply(ctx context.Context, e *env, o options) (*ApplyResult, error) {
	res := &ApplyResult{Rows: o.applyRows, TxRows: o.txRows, BatchRows: o.applyBatchRows}
	srcDSN, err := e.pg.CreateDatabase(ctx, applySourceDB)
	if err != nil {
		return nil, err
	}
	if err := e.pg.Exec(ctx, applySourceDB, benchTable); err != nil {
		return nil, fmt.Errorf("create source table: %w", err)
	}
	slot := (&spec.Source{Name: sourceName}).SlotName(instance)
	defer func() { _ = e.dropSlots(context.WithoutCancel(ctx), applySourceDB, slot) }()
	if err := e.captureBacklog(ctx, srcDSN, slot, res); err != nil {
		return nil, fmt.Errorf("put the backlog on Kafka: %w", err)
	}
	srcSum, err := tableChecksum(ctx, srcDSN, applyTable)
	if err != nil {
		return nil, err
	}
	progress("reading the source rows into memory for the bare loads")
	rows, err := readBenchRows(ctx, srcDSN)
	if err != nil {
		return nil, err
	}
	var errs []error
	for round := 1; round <= o.applyRounds && ctx.Err() == nil; round++ {
		progress("apply round %d of %d", round, o.applyRounds)
		r, err := e.applyRound(ctx, srcDSN, res, srcSum, rows, round)
		errs = append(errs, err)
		res.Rounds = append(res.Rounds, r)
	}
	res.pickMedians()
	return res, errors.Join(errs...)
}

// applyRound times Sluice and the bare load of each mode, back to back.
func (e *env) applyRound(ctx context.Context, srcDSN string, res *ApplyResult, srcSum checksum, rows []benchRow, round int) (ApplyRound, error) {
	var r ApplyRound
	var errs []error
	var err error
	if r.Upsert, err = e.sluiceApply(ctx, srcDSN, spec.SinkUpsert, res, srcSum, round); err != nil {
		errs = append(errs, fmt.Errorf("sluice upsert: %w", err))
	}
	if r.BareUpsert, err = e.bareUpsert(ctx, rows, srcSum, round); err != nil {
		errs = append(errs, fmt.Errorf("bare upsert: %w", err))
	}
	if r.Insert, err = e.sluiceApply(ctx, srcDSN, spec.SinkInsert, res, srcSum, round); err != nil {
		errs = append(errs, fmt.Errorf("sluice insert: %w", err))
	}
	if r.BareCopy, err = e.bareCopy(ctx, rows, srcSum, round); err != nil {
		errs = append(errs, fmt.Errorf("bare COPY: %w", err))
	}
	if r.Upsert != nil && r.BareUpsert != nil {
		r.UpsertRatio = ratio(r.Upsert.RowsPerSec, r.BareUpsert.RowsPerSec)
	}
	if r.Insert != nil && r.BareCopy != nil {
		r.InsertRatio = ratio(r.Insert.RowsPerSec, r.BareCopy.RowsPerSec)
	}
	if err := errors.Join(errs...); err != nil {
		return r, fmt.Errorf("round %d: %w", round, err)
	}
	return r, nil
}

// pickMedians sets the result's runs and ratios from the rounds: for each
// mode, the complete round with the median ratio (the lower middle one of
// an even count).
func (a *ApplyResult) pickMedians() {
	if m, ok := medianRound(a.Rounds, func(r ApplyRound) (float64, bool) {
		return r.UpsertRatio, r.Upsert != nil && r.BareUpsert != nil
	}); ok {
		a.Upsert, a.BareUpsert, a.UpsertRatio = m.Upsert, m.BareUpsert, m.UpsertRatio
	}
	if m, ok := medianRound(a.Rounds, func(r ApplyRound) (float64, bool) {
		return r.InsertRatio, r.Insert != nil && r.BareCopy != nil
	}); ok {
		a.Insert, a.BareCopy, a.InsertRatio = m.Insert, m.BareCopy, m.InsertRatio
	}
}

// medianRound is the round with the median ratio among those ratio says
// are complete (the lower middle one of an even count); false if none is.
func medianRound(rounds []ApplyRound, ratio func(ApplyRound) (float64, bool)) (ApplyRound, bool) {
	var done []ApplyRound
	for _, r := range rounds {
		if _, ok := ratio(r); ok {
			done = append(done, r)
		}
	}
	if len(done) == 0 {
		return ApplyRound{}, false
	}
	slices.SortStableFunc(done, func(x, y ApplyRound) int {
		rx, _ := ratio(x)
		ry, _ := ratio(y)
		return cmp.Compare(rx, ry)
	})
	return done[(len(done)-1)/2], true
}

// captureBacklog runs Sluice with the source only, loads the rows while it
// captures them, and stops it once they are all on Kafka and the source has
// confirmed the WAL they came from: the runs that follow start from there,
// with nothing left to capture.
func (e *env) captureBacklog(ctx context.Context, srcDSN, slot string, res *ApplyResult) error {
	p, err := e.launchSluice(ctx, applyScenario, sourceSpec(applyTable), "SRC_DSN="+srcDSN)
	if err != nil {
		return err
	}
	defer p.stop()
	if err := waitSlot(ctx, srcDSN, slot, true, p.exited); err != nil {
		return err
	}
	progress("loading %d rows in %d-row transactions while sluice captures them", res.Rows, res.TxRows)
	t0 := time.Now()
	if err := load(ctx, srcDSN, res.Rows, res.TxRows); err != nil {
		return err
	}
	res.LoadSeconds = time.Since(t0).Seconds()
	// The vacuum's WAL is decoded and confirmed by this run, not by the
	// source of every measured run after it (see settle).
	if err := settle(ctx, srcDSN); err != nil {
		return err
	}
	lsn, err := queryString(ctx, srcDSN, "SELECT pg_current_wal_lsn()::text")
	if err != nil {
		return err
	}
	adm, err := newAdmin(p.addr)
	if err != nil {
		return err
	}
	defer adm.Close()
	topic := topicOf(applyTable)
	if _, _, err := waitRecords(ctx, adm, int64(res.Rows), 30*time.Minute, p.exited, topic); err != nil {
		return err
	}
	if _, err := waitConfirmed(ctx, srcDSN, slot, lsn, 5*time.Minute); err != nil {
		return err
	}
	if res.KafkaRecords, err = endOffsets(ctx, adm, topic); err != nil {
		return err
	}
	progress("%d records on %s; summing their key+value bytes", res.KafkaRecords, topic)
	if res.KafkaBytes, err = topicBytes(ctx, p.addr, topic, res.KafkaRecords); err != nil {
		return err
	}
	p.stop()
	res.KafkaDiskBytes, err = dirSize(filepath.Join(e.work, applyScenario, "data"))
	return err
}

// copyDir copies the directory tree src to dst, which must not exist.
func copyDir(src, dst string) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, fi.Mode().Perm())
		case d.Type().IsRegular():
			return copyFile(path, to, fi.Mode().Perm())
		}
		return fmt.Errorf("%s: not a regular file or directory", path)
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// copyFile copies the regular file src to a new file dst.
func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	return n, nil
}

// sluiceApply starts Sluice on a copy of the data directory of the capture
// run (Sluice keeps the specs it ran in its Kafka, so the runs must not
// share one) with the source and one pipeline of the given mode into a
// fresh database, and times it until the pipeline's stored offsets reach
// the end of the topic. It then checks the destination table against the
// source (not timed).
func (e *env) sluiceApply(ctx context.Context, srcDSN string, mode spec.SinkMode, res *ApplyResult, srcSum checksum, round int) (*ApplyRun, error) {
	db := fmt.Sprintf("apply_%s_%d", mode, round)
	run := &ApplyRun{Mode: string(mode), Pipeline: "apply_" + string(mode)}
	scenario := fmt.Sprintf("%s-%s-%d", applyScenario, mode, round)
	if err := copyDir(filepath.Join(e.work, applyScenario, "data"), filepath.Join(e.work, scenario, "data")); err != nil {
		return nil, err
	}
	dst, err := e.destination(ctx)
	if err != nil {
		return nil, err
	}
	dstDSN, err := dst.CreateDatabase(ctx, db)
	if err != nil {
		return nil, err
	}
	if err := checkpoint(ctx, dstDSN); err != nil {
		return nil, err
	}
	progress("sluice applying %d records in %s mode", res.KafkaRecords, mode)
	specText := sourceSpec(applyTable) + pipelineSpec(run.Pipeline, applyTable, mode, true, res.BatchRows)
	p, err := e.launchSluice(ctx, scenario, specText, "SRC_DSN="+srcDSN, "DST_DSN="+dstDSN)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	first, done, err := waitApplied(ctx, p, dstDSN, run.Pipeline, res.KafkaRecords, 30*time.Minute)
	if err != nil {
		return nil, err
	}
	rss, err1 := p.peakRSS()
	cpu, err2 := p.cpuTime()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	consuming, err := p.logTime(run.Pipeline, "pipeline consuming")
	if err != nil {
		return nil, err
	}
	p.stop()
	run.PeakRSSBytes, run.CPUSeconds = rss, cpu.Seconds()
	run.StartupSeconds = consuming.Sub(p.started).Seconds()
	run.FirstBatchSeconds = first.Sub(p.started).Seconds()
	run.TotalSeconds = done.Sub(p.started).Seconds()
	run.ApplySeconds = done.Sub(consuming).Seconds()
	run.RowsPerSec = ratio(float64(res.Rows), run.ApplySeconds)
	run.TotalRowsPerSec = ratio(float64(res.Rows), run.TotalSeconds)
	sum, err := tableChecksum(ctx, dstDSN, applyTable)
	if err != nil {
		return nil, err
	}
	run.DestinationRows, run.MatchesSource = sum.rows, sum == srcSum
	if run.DestinationTable, err = describeTable(ctx, dstDSN, applyTable); err != nil {
		return nil, err
	}
	if err := e.dropDatabase(ctx, db); err != nil {
		return nil, err
	}
	return run, nil
}

// waitApplied polls the pipeline's offsets table in the destination every
// 50ms until its next offsets add up to want, returning when a first batch
// was seen committed and when want was reached. A sluice process that exits,
// or a pipeline that logs a failure, ends the wait: its figures would mean
// nothing.
func waitApplied(ctx context.Context, p *sluiceProc, dstDSN, pipeline string, want int64, limit time.Duration) (first, done time.Time, err error) {
	q := `SELECT coalesce(sum(next_offset), 0)::bigint FROM public.` +
		pgx.Identifier{spec.OffsetsTable(instance, pipeline)}.Sanitize()
	var n int64
	err = poll(ctx, dstDSN, limit, func(conn *pgx.Conn) (bool, error) {
		if err := p.exited(); err != nil {
			return false, err
		}
		if line, err := p.failureLine(pipeline); err != nil {
			return false, err
		} else if line != "" {
			return false, fmt.Errorf("pipeline %s failed:\n%s", pipeline, line)
		}
		err := conn.QueryRow(ctx, q).Scan(&n)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" { // the sink has not created it yet
			return false, nil
		}
		if err != nil {
			return false, err
		}
		now := time.Now()
		if n > 0 && first.IsZero() {
			first = now
		}
		if n >= want {
			done = now
			return true, nil
		}
		return false, nil
	}, fmt.Sprintf("pipeline %s to apply %d records", pipeline, want))
	if err != nil {
		err = fmt.Errorf("%w (applied %d)", err, n)
	}
	return first, done, err
}

// isFailure tells whether a log line reports that a pipeline failed or
// was interrupted.
func isFailure(line string) bool {
	return strings.Contains(line, "level=ERROR") || strings.Contains(line, `msg="pipeline failed`) ||
		strings.Contains(line, `msg="pipeline interrupted`)
}

// failureLine returns the first line of this run's log that reports a
// failure of pipeline (see isFailure), or "".
func (p *sluiceProc) failureLine(pipeline string) (string, error) {
	var found string
	err := p.eachLogLine(func(line string) bool {
		if strings.Contains(line, "pipeline="+pipeline) && isFailure(line) {
			found = line
			return false
		}
		return true
	})
	return found, err
}

// logTime returns the time stamp of the first line of this run's log with
// msg and pipeline=pipeline.
func (p *sluiceProc) logTime(pipeline, msg string) (time.Time, error) {
	var t time.Time
	var perr error
	err := p.eachLogLine(func(line string) bool {
		if !strings.Contains(line, `msg="`+msg+`"`) || !strings.Contains(line, "pipeline="+pipeline) {
			return true
		}
		v, ok := strings.CutPrefix(line, "time=")
		if !ok {
			perr = fmt.Errorf("log line without a leading time=: %q", line)
			return false
		}
		v, _, _ = strings.Cut(v, " ")
		t, perr = time.Parse(time.RFC3339Nano, v)
		return false
	})
	if err = errors.Join(err, perr); err != nil {
		return t, fmt.Errorf("sluice log: %w", err)
	}
	if t.IsZero() {
		return t, fmt.Errorf("sluice log: no %q line for pipeline %s", msg, pipeline)
	}
	return t, nil
}

// eachLogLine calls fn with each line this run wrote to the log, until fn
// returns false.
func (p *sluiceProc) eachLogLine(fn func(string) bool) error {
	f, err := os.Open(p.logPath)
	if err != nil {
		return fmt.Errorf("open sluice log: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(p.logStart, io.SeekStart); err != nil {
		return fmt.Errorf("seek sluice log: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if !fn(sc.Text()) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read sluice log: %w", err)
	}
	return nil
}

// benchRow is a row of the bench table in memory.
type benchRow struct {
	id int64
	a  int32
	b  string
	c  pgtype.Numeric
	d  time.Time
}

// bareUpsert times the bare upsert of rows into a fresh database.
func (e *env) bareUpsert(ctx context.Context, rows []benchRow, srcSum checksum, round int) (*BareApply, error) {
	progress("bare upsert of %d rows (%d-row INSERT ... ON CONFLICT, a transaction each)", len(rows), bareUpsertBatch)
	b := &BareApply{Method: "INSERT ... VALUES (...), ... ON CONFLICT (id) DO UPDATE", BatchRows: bareUpsertBatch}
	db := fmt.Sprintf("apply_bare_upsert_%d", round)
	if err := e.timeBare(ctx, db, benchTable, b, srcSum, func(conn *pgx.Conn) error {
		return bareUpsertRows(ctx, conn, rows)
	}); err != nil {
		return nil, err
	}
	return b, nil
}

// bareCopy times one binary COPY of rows into a fresh database.
func (e *env) bareCopy(ctx context.Context, rows []benchRow, srcSum checksum, round int) (*BareApply, error) {
	progress("bare COPY of %d rows", len(rows))
	b := &BareApply{Method: "COPY (binary, pgx CopyFrom)", BatchRows: len(rows)}
	// No primary key, as Sluice creates insert-mode tables.
	table := `CREATE TABLE bench (id bigint, a int, b text, c numeric(12,2), d timestamptz)`
	db := fmt.Sprintf("apply_bare_copy_%d", round)
	if err := e.timeBare(ctx, db, table, b, srcSum, func(conn *pgx.Conn) error {
		_, err := conn.CopyFrom(ctx, pgx.Identifier{applyTable}, benchColumns, pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			return []any{r.id, r.a, r.b, r.c, r.d}, nil
		}))
		return err
	}); err != nil {
		return nil, err
	}
	return b, nil
}

// timeBare creates database db with table, then times load on a connection
// to it (the connection is made before the clock starts), and checks the
// result against the source.
func (e *env) timeBare(ctx context.Context, db, table string, res *BareApply, srcSum checksum, load func(*pgx.Conn) error) error {
	dst, err := e.destination(ctx)
	if err != nil {
		return err
	}
	dsn, err := dst.CreateDatabase(ctx, db)
	if err != nil {
		return err
	}
	if err := dst.Exec(ctx, db, table); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	if err := checkpoint(ctx, dsn); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	t0 := time.Now()
	if err := load(conn); err != nil {
		return err
	}
	res.Seconds = time.Since(t0).Seconds()
	sum, err := tableChecksum(ctx, dsn, applyTable)
	if err != nil {
		return err
	}
	res.RowsPerSec = ratio(float64(sum.rows), res.Seconds)
	res.DestinationRows, res.MatchesSource = sum.rows, sum == srcSum
	conn.Close(ctx) //nolint:errcheck // the load is done; DROP DATABASE needs it gone
	return e.dropDatabase(ctx, db)
}

// readBenchRows reads the whole bench table, in id order.
func readBenchRows(ctx context.Context, dsn string) ([]benchRow, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rs, err := conn.Query(ctx, `SELECT id, a, b, c, d FROM bench ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read source rows: %w", err)
	}
	var out []benchRow
	var r benchRow
	if _, err := pgx.ForEachRow(rs, []any{&r.id, &r.a, &r.b, &r.c, &r.d}, func() error {
		out = append(out, r)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read source rows: %w", err)
	}
	return out, nil
}

// bareUpsertRows writes rows with one multi-row INSERT ... ON CONFLICT DO
// UPDATE per bareUpsertBatch rows, each its own transaction (autocommit).
// pgx prepares the statement once and reuses it.
func bareUpsertRows(ctx context.Context, conn *pgx.Conn, rows []benchRow) error {
	stmt := func(n int) string {
		var b strings.Builder
		b.WriteString("INSERT INTO bench (id, a, b, c, d) VALUES ")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "($%d,$%d,$%d,$%d,$%d)", 5*i+1, 5*i+2, 5*i+3, 5*i+4, 5*i+5)
		}
		b.WriteString(" ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, b = EXCLUDED.b, c = EXCLUDED.c, d = EXCLUDED.d")
		return b.String()
	}
	full := stmt(bareUpsertBatch)
	args := make([]any, 0, 5*bareUpsertBatch)
	for start := 0; start < len(rows); start += bareUpsertBatch {
		batch := rows[start:min(start+bareUpsertBatch, len(rows))]
		sql := full
		if len(batch) < bareUpsertBatch {
			sql = stmt(len(batch))
		}
		args = args[:0]
		for i := range batch {
			r := &batch[i]
			args = append(args, r.id, r.a, r.b, r.c, r.d)
		}
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			return fmt.Errorf("upsert rows %d-%d: %w", batch[0].id, batch[len(batch)-1].id, err)
		}
	}
	return nil
}

// checksum identifies a table's content regardless of row order.
type checksum struct {
	rows int64
	sum  int64 // sum of the hashes of the rows' text forms
}

// tableChecksum reads the row count and an order-independent hash of the
// content of table.
func tableChecksum(ctx context.Context, dsn, table string) (checksum, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return checksum{}, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var c checksum
	t := pgx.Identifier{table}.Sanitize()
	err = conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(hashtext(t::text)::bigint), 0)::bigint FROM `+t+` t`).Scan(&c.rows, &c.sum)
	if err != nil {
		return c, fmt.Errorf("checksum of %s: %w", table, err)
	}
	return c, nil
}

// describeTable lists table's columns with their types, and its primary
// key, as the destination catalog has them.
func describeTable(ctx context.Context, dsn, table string) (string, error) {
	return queryString(ctx, dsn, fmt.Sprintf(`SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
		|| coalesce((SELECT ', ' || pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.conrelid = '%[1]s'::regclass AND c.contype = 'p'), '')
		FROM pg_attribute a WHERE a.attrelid = '%[1]s'::regclass AND a.attnum > 0 AND NOT a.attisdropped`, table))
}

// settle vacuums and analyzes the source's bench table once loaded (not
// timed): otherwise autovacuum does it whenever it wakes, in the middle of
// whichever run comes next. (Destination databases are dropped once
// measured, for the same reason and for disk space.) Before, the bare upsert
// varied from 120k to 160k rows/s from one bench to the next. It ends with a
// CHECKPOINT, which logs the running transactions: the slot's restart_lsn
// can then move past the vacuum's WAL once it is confirmed. Otherwise the
// walsender of each measured run decodes that WAL again from the slot's
// restart_lsn (a perf profile showed it at 7% of the CPU of a sluice run).
func settle(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+applyTable); err != nil {
		return fmt.Errorf("vacuum the finished run's table: %w", err)
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint after the vacuum: %w", err)
	}
	return nil
}

// dropDatabase drops a measured run's database on the destination server
// (not timed).
func (e *env) dropDatabase(ctx context.Context, db string) error {
	if err := e.dst.Exec(ctx, "postgres", "DROP DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("drop the measured database %s: %w", db, err)
	}
	return nil
}

// checkpoint runs CHECKPOINT, so that a timed load does not pay for the
// dirty buffers of the one before.
func checkpoint(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}
