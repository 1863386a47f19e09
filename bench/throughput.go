package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// ThroughputResult is the capture of a preloaded backlog, by Sluice and by
// the bare reader, from slots created before the load.
type ThroughputResult struct {
	Rows        int     `json:"rows"`
	TxRows      int     `json:"rows_per_transaction"`
	LoadSeconds float64 `json:"load_seconds"`

	// Sluice: from starting the process until the topic holds every row.
	SluiceSeconds      float64 `json:"sluice_seconds"`
	SluiceFirstSeconds float64 `json:"sluice_first_record_seconds"`
	SluiceRowsPerSec   float64 `json:"sluice_rows_per_sec"`
	// SluiceSteadyRowsPerSec leaves out the startup (before the first record).
	SluiceSteadyRowsPerSec float64 `json:"sluice_steady_rows_per_sec"`
	KafkaBytes             int64   `json:"kafka_bytes"` // key+value, summed over the whole topic
	SluiceMBPerSec         float64 `json:"sluice_mb_per_sec"`
	SluiceCPUSeconds       float64 `json:"sluice_cpu_seconds"`
	SluicePeakRSSBytes     int64   `json:"sluice_peak_rss_bytes"`

	// Bare reader: from connecting until it has seen every insert.
	BareSeconds    float64 `json:"bare_seconds"`
	BareRowsPerSec float64 `json:"bare_rows_per_sec"`
	BareWALBytes   int64   `json:"bare_pgoutput_bytes"`
	BareMBPerSec   float64 `json:"bare_pgoutput_mb_per_sec"`
	BareCPUSeconds float64 `json:"bare_cpu_seconds"`

	Ratio float64 `json:"ratio"` // Sluice rows/s over bare rows/s
}

const bareSlot = "bare" // slot and publication of the bare reader

// runThroughput creates both slots, loads the table, then times Sluice and
// the bare reader draining the same backlog.
func runThroughput(ctx context.Context, e *env, o options) (*ThroughputResult, error) {
	const db = "throughput"
	res := &ThroughputResult{Rows: o.rows, TxRows: o.txRows}
	dsn, err := e.pg.CreateDatabase(ctx, db)
	if err != nil {
		return nil, err
	}
	if err := e.pg.Exec(ctx, db, benchTable); err != nil {
		return nil, fmt.Errorf("create table: %w", err)
	}
	slot := (&spec.Source{Name: sourceName}).SlotName(instance)
	defer func() { _ = e.dropSlots(context.WithoutCancel(ctx), db, slot, bareSlot) }()
	if err := e.prepareSlots(ctx, dsn, db, slot); err != nil {
		return nil, err
	}
	progress("loading %d rows in %d-row transactions", o.rows, o.txRows)
	t0 := time.Now()
	if err := load(ctx, dsn, o.rows, o.txRows); err != nil {
		return nil, err
	}
	res.LoadSeconds = time.Since(t0).Seconds()
	progress("sluice capturing the backlog")
	if err := e.sluiceDrain(ctx, dsn, res); err != nil {
		return nil, err
	}
	progress("bare reader capturing the backlog")
	st, err := readBare(ctx, dsn, bareSlot, bareSlot, int64(o.rows))
	if err != nil {
		return nil, err
	}
	res.BareSeconds = st.Elapsed.Seconds()
	res.BareRowsPerSec = ratio(float64(o.rows), res.BareSeconds)
	res.BareWALBytes = st.WALBytes
	res.BareMBPerSec = ratio(float64(st.WALBytes)/1e6, res.BareSeconds)
	res.BareCPUSeconds = st.CPU.Seconds()
	res.Ratio = ratio(res.SluiceRowsPerSec, res.BareRowsPerSec)
	return res, nil
}

// prepareSlots has Sluice create its slot and publication (a first run with
// snapshot: never, stopped once it streams), then creates the bare reader's.
func (e *env) prepareSlots(ctx context.Context, dsn, db, slot string) error {
	p, err := e.startSluice(ctx, "throughput", dsn, []string{"public.bench"})
	if err != nil {
		return err
	}
	err = waitSlot(ctx, dsn, slot, true, p.exited)
	p.stop()
	if err != nil {
		return err
	}
	if err := waitSlot(ctx, dsn, slot, false, nil); err != nil {
		return err
	}
	return e.createBareSlot(ctx, db, bareSlot, []string{"public.bench"})
}

// sluiceDrain starts Sluice on the loaded backlog and waits until the topic
// holds every row; then it reads the process's peak RSS and CPU time, and
// sums the bytes on the topic (not timed).
func (e *env) sluiceDrain(ctx context.Context, dsn string, res *ThroughputResult) error {
	p, err := e.startSluice(ctx, "throughput", dsn, []string{"public.bench"})
	if err != nil {
		return err
	}
	defer p.stop()
	adm, err := newAdmin(p.addr)
	if err != nil {
		return err
	}
	defer adm.Close()
	topic := topicOf("bench")
	first, done, err := waitRecords(ctx, adm, int64(res.Rows), 30*time.Minute, p.exited, topic)
	if err != nil {
		return err
	}
	res.SluiceSeconds = done.Sub(p.started).Seconds()
	res.SluiceFirstSeconds = first.Sub(p.started).Seconds()
	res.SluiceRowsPerSec = ratio(float64(res.Rows), res.SluiceSeconds)
	res.SluiceSteadyRowsPerSec = ratio(float64(res.Rows), done.Sub(first).Seconds())
	rss, err1 := p.peakRSS()
	cpu, err2 := p.cpuTime()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	res.SluicePeakRSSBytes, res.SluiceCPUSeconds = rss, cpu.Seconds()
	progress("summing key+value bytes over the topic")
	if res.KafkaBytes, err = topicBytes(ctx, p.addr, topic, int64(res.Rows)); err != nil {
		return err
	}
	res.SluiceMBPerSec = ratio(float64(res.KafkaBytes)/1e6, res.SluiceSeconds)
	return nil
}
