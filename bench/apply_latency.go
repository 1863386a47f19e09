package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// ApplyLatencyResult is source-to-destination latency at a steady insert
// rate through one Sluice process (source, embedded broker and pipeline).
type ApplyLatencyResult struct {
	TargetRowsPerSec   int     `json:"target_rows_per_sec"`
	Seconds            float64 `json:"seconds"`
	Rows               int64   `json:"rows"`
	AchievedRowsPerSec float64 `json:"achieved_rows_per_sec"`
	Applied            int64   `json:"applied"`
	// CatchUpSeconds is how long after the last insert the destination had
	// every row.
	CatchUpSeconds float64 `json:"catch_up_seconds"`
	// EndToEnd is applied_at - created_at of every row: clock_timestamp()
	// of the source INSERT to clock_timestamp() of the destination INSERT,
	// two servers on one host, so one clock.
	EndToEnd           percentiles `json:"source_insert_to_destination_insert_ms"`
	SluicePeakRSSBytes int64       `json:"sluice_peak_rss_bytes"`
	SluiceCPUSeconds   float64     `json:"sluice_cpu_seconds"`
}

const (
	latencyPipeline = "apply_latency"
	// latSource is the source table; created_at is the time of the INSERT.
	latSource = `CREATE TABLE lat (id bigint PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT clock_timestamp(), pad text)`
	// latDestination is the destination table: the sink writes the three
	// columns it has, and applied_at takes the time of its INSERT.
	latDestination = `CREATE TABLE lat (id bigint PRIMARY KEY, created_at timestamptz, pad text,
		applied_at timestamptz NOT NULL DEFAULT clock_timestamp())`
	// latInsert inserts ids $1..$2 with a 64-character pad.
	latInsert = `INSERT INTO lat (id, pad) SELECT g, md5(g::text) || md5((-g)::text) FROM generate_series($1::bigint, $2::bigint) g`
)

// runApplyLatency streams a steady insert load through a source and an
// upsert pipeline into a pre-created table on the destination server, then reads each row's age at apply time off the destination.
func runApplyLatency(ctx context.Context, e *env, o options) (*ApplyLatencyResult, error) {
	const srcDB, dstDB = "apply_lat_src", "apply_lat_dst"
	srcDSN, err := e.pg.CreateDatabase(ctx, srcDB)
	if err != nil {
		return nil, err
	}
	dst, err := e.destination(ctx)
	if err != nil {
		return nil, err
	}
	dstDSN, err := dst.CreateDatabase(ctx, dstDB)
	if err != nil {
		return nil, err
	}
	if err := e.pg.Exec(ctx, srcDB, latSource); err != nil {
		return nil, fmt.Errorf("create source table: %w", err)
	}
	if err := dst.Exec(ctx, dstDB, latDestination); err != nil {
		return nil, fmt.Errorf("create destination table: %w", err)
	}
	slot := (&spec.Source{Name: sourceName}).SlotName(instance)
	defer func() { _ = e.dropSlots(context.WithoutCancel(ctx), srcDB, slot) }()
	specText := sourceSpec("lat") + pipelineSpec(latencyPipeline, "lat", spec.SinkUpsert, false, spec.DefaultBatchRows)
	p, err := e.launchSluice(ctx, "apply-latency", specText, "SRC_DSN="+srcDSN, "DST_DSN="+dstDSN)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if err := waitSlot(ctx, srcDSN, slot, true, p.exited); err != nil {
		return nil, err
	}
	// A first row creates the topic; once it is applied, the pipeline is
	// consuming and the measured rows pay no startup.
	if err := e.pg.Exec(ctx, srcDB, "INSERT INTO lat (id, pad) VALUES (0, 'warm-up')"); err != nil {
		return nil, fmt.Errorf("warm-up insert: %w", err)
	}
	if _, _, err := waitApplied(ctx, p, dstDSN, latencyPipeline, 1, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("warm-up row: %w", err)
	}
	progress("inserting %d rows/s for %s through source, Kafka and pipeline", o.latencyRate, o.latencyDuration)
	res := &ApplyLatencyResult{TargetRowsPerSec: o.latencyRate}
	var secs float64
	res.Rows, secs, err = generate(ctx, srcDSN, latInsert, o.latencyRate, o.latencyDuration)
	if err != nil {
		return nil, err
	}
	res.Seconds, res.AchievedRowsPerSec = secs, ratio(float64(res.Rows), secs)
	t0 := time.Now()
	// One record per row on the topic, the warm-up row's included.
	if _, _, err := waitApplied(ctx, p, dstDSN, latencyPipeline, res.Rows+1, time.Minute); err != nil {
		return nil, err
	}
	res.CatchUpSeconds = time.Since(t0).Seconds()
	if res.SluicePeakRSSBytes, err = p.peakRSS(); err != nil {
		return nil, err
	}
	cpu, err := p.cpuTime()
	if err != nil {
		return nil, err
	}
	res.SluiceCPUSeconds = cpu.Seconds()
	ages, err := applyAges(ctx, dstDSN)
	if err != nil {
		return nil, err
	}
	res.Applied = int64(len(ages))
	res.EndToEnd = percentilesOf(ages)
	return res, p.exited()
}

// applyAges returns applied_at - created_at of every measured row, in
// milliseconds.
func applyAges(ctx context.Context, dsn string) ([]float64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT extract(epoch FROM applied_at - created_at)::float8 * 1000 FROM lat WHERE id > 0`)
	if err != nil {
		return nil, fmt.Errorf("read latencies: %w", err)
	}
	ages, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	if err != nil {
		return nil, fmt.Errorf("read latencies: %w", err)
	}
	return ages, nil
}
