package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// PgbenchResult is the source impact: pgbench TPS while Sluice captures,
// next to pgbench TPS while the bare reader captures. Each run has its own,
// freshly initialised database, so neither inherits the other's bloat.
type PgbenchResult struct {
	Scale   int      `json:"scale"`
	Clients int      `json:"clients"`
	Threads int      `json:"threads"`
	Seconds float64  `json:"seconds"`
	Tables  []string `json:"tables"`

	SluiceTPS       float64 `json:"sluice_tps"`
	SluiceLatencyMs float64 `json:"sluice_latency_avg_ms"`
	// SluiceCatchUpSeconds is how long after pgbench ended Sluice confirmed
	// the WAL position pgbench ended at.
	SluiceCatchUpSeconds float64 `json:"sluice_catch_up_seconds"`
	SluicePeakRSSBytes   int64   `json:"sluice_peak_rss_bytes"`

	BareTPS            float64 `json:"bare_tps"`
	BareLatencyMs      float64 `json:"bare_latency_avg_ms"`
	BareCatchUpSeconds float64 `json:"bare_catch_up_seconds"`
	BareChanges        int64   `json:"bare_changes"`

	Ratio float64 `json:"ratio"` // Sluice TPS over bare TPS
}

const (
	pgbenchClients = 4
	pgbenchThreads = 2
)

// pgbenchTables are captured in full; pgbench_history gets a primary key,
// which Sluice needs to key its records.
var pgbenchTables = []string{"public.pgbench_accounts", "public.pgbench_branches", "public.pgbench_history", "public.pgbench_tellers"}

// runPgbench runs pgbench against a database Sluice captures, then against
// one the bare reader captures.
func runPgbench(ctx context.Context, e *env, o options) (*PgbenchResult, error) {
	res := &PgbenchResult{Scale: o.pgbenchScale, Clients: pgbenchClients, Threads: pgbenchThreads,
		Seconds: o.pgbenchDuration.Seconds(), Tables: pgbenchTables}
	for _, db := range []string{"pgbench_sluice", "pgbench_bare"} {
		progress("pgbench -i -s %d %s", o.pgbenchScale, db)
		if err := e.initPgbench(ctx, db, o.pgbenchScale); err != nil {
			return nil, err
		}
	}
	if err := e.pgbenchSluice(ctx, o, res); err != nil {
		return nil, err
	}
	if err := e.pgbenchBare(ctx, o, res); err != nil {
		return nil, err
	}
	res.Ratio = ratio(res.SluiceTPS, res.BareTPS)
	return res, nil
}

// pgbenchSluice measures pgbench while Sluice captures the database.
func (e *env) pgbenchSluice(ctx context.Context, o options, res *PgbenchResult) error {
	const db = "pgbench_sluice"
	dsn := e.pg.DSN(db)
	slot := (&spec.Source{Name: sourceName}).SlotName(instance)
	defer func() { _ = e.dropSlots(context.WithoutCancel(ctx), db, slot) }()
	p, err := e.startSluice(ctx, "pgbench", dsn, pgbenchTables)
	if err != nil {
		return err
	}
	defer p.stop()
	if err := waitSlot(ctx, dsn, slot, true, p.exited); err != nil {
		return err
	}
	progress("pgbench for %s while sluice captures", o.pgbenchDuration)
	if res.SluiceTPS, res.SluiceLatencyMs, err = e.pgbench(ctx, db, o.pgbenchDuration); err != nil {
		return err
	}
	catchUp, err := catchUp(ctx, dsn, slot)
	if err != nil {
		return err
	}
	res.SluiceCatchUpSeconds = catchUp.Seconds()
	if res.SluicePeakRSSBytes, err = p.peakRSS(); err != nil {
		return err
	}
	return p.exited()
}

// pgbenchBare measures pgbench while the bare reader captures the database.
func (e *env) pgbenchBare(ctx context.Context, o options, res *PgbenchResult) error {
	const db, slot = "pgbench_bare", "bare_pgbench"
	dsn := e.pg.DSN(db)
	if err := e.createBareSlot(ctx, db, slot, pgbenchTables); err != nil {
		return err
	}
	defer func() { _ = e.dropSlots(context.WithoutCancel(ctx), db, slot) }()
	rctx, stopReader := context.WithCancel(ctx)
	defer stopReader()
	type outcome struct {
		st  bareStats
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		st, err := readBare(rctx, dsn, slot, slot, 0)
		done <- outcome{st, err}
	}()
	alive := func() error {
		select {
		case r := <-done:
			done <- r
			return errors.Join(errors.New("bare reader stopped early"), r.err)
		default:
			return nil
		}
	}
	err := waitSlot(ctx, dsn, slot, true, alive)
	if err == nil {
		progress("pgbench for %s while the bare reader captures", o.pgbenchDuration)
		res.BareTPS, res.BareLatencyMs, err = e.pgbench(ctx, db, o.pgbenchDuration)
	}
	var c time.Duration
	if err == nil {
		c, err = catchUp(ctx, dsn, slot)
		res.BareCatchUpSeconds = c.Seconds()
	}
	stopReader()
	r := <-done
	res.BareChanges = r.st.Changes
	return errors.Join(err, r.err)
}

// catchUp waits until the slot confirms the current WAL position.
func catchUp(ctx context.Context, dsn, slot string) (time.Duration, error) {
	lsn, err := queryString(ctx, dsn, "SELECT pg_current_wal_lsn()::text")
	if err != nil {
		return 0, err
	}
	return waitConfirmed(ctx, dsn, slot, lsn, 2*time.Minute)
}

// initPgbench creates db, initialises it with pgbench -i and gives
// pgbench_history a primary key.
func (e *env) initPgbench(ctx context.Context, db string, scale int) error {
	if _, err := e.pg.CreateDatabase(ctx, db); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.pg.BinDir(), "pgbench"), "-i", "-q", "-s", strconv.Itoa(scale),
		"-h", "127.0.0.1", "-p", strconv.Itoa(e.pg.Port()), "-U", "postgres", db)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i %s: %w\n%s", db, err, out)
	}
	if err := e.pg.Exec(ctx, db, "ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY; CHECKPOINT"); err != nil {
		return fmt.Errorf("key pgbench_history: %w", err)
	}
	return nil
}

var (
	tpsRE     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	latencyRE = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
)

// pgbench runs the TPC-B-like default script for d and returns its TPS and
// average latency.
func (e *env) pgbench(ctx context.Context, db string, d time.Duration) (tps, latencyMs float64, err error) {
	// Both runs start from a clean checkpoint, so neither pays for the other's dirty pages.
	if err := e.pg.Exec(ctx, db, "CHECKPOINT"); err != nil {
		return 0, 0, fmt.Errorf("checkpoint: %w", err)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(e.pg.BinDir(), "pgbench"), "-n",
		"-c", strconv.Itoa(pgbenchClients), "-j", strconv.Itoa(pgbenchThreads), "-T", strconv.Itoa(int(d.Seconds())),
		"-h", "127.0.0.1", "-p", strconv.Itoa(e.pg.Port()), "-U", "postgres", db)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("pgbench %s: %w\n%s", db, err, out)
	}
	m := tpsRE.FindSubmatch(out)
	l := latencyRE.FindSubmatch(out)
	if m == nil || l == nil {
		return 0, 0, fmt.Errorf("pgbench %s: no tps or latency in its output:\n%s", db, out)
	}
	tps, err1 := strconv.ParseFloat(string(m[1]), 64)
	latencyMs, err2 := strconv.ParseFloat(string(l[1]), 64)
	return tps, latencyMs, errors.Join(err1, err2)
}
