package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// LatencyResult is commit-to-consumer latency at a steady insert rate.
type LatencyResult struct {
	TargetRowsPerSec   int     `json:"target_rows_per_sec"`
	Seconds            float64 `json:"seconds"`
	Rows               int64   `json:"rows"`
	AchievedRowsPerSec float64 `json:"achieved_rows_per_sec"`
	Received           int64   `json:"received"`
	// Source commit (payload.source.ts_ms) to receipt by a consumer.
	EndToEnd percentiles `json:"commit_to_consumer_ms"`
	// Source commit to Sluice encoding the record (payload.ts_ms).
	ToEncode           percentiles `json:"commit_to_encode_ms"`
	SluicePeakRSSBytes int64       `json:"sluice_peak_rss_bytes"`
}

// envelope holds the parts of a Debezium JSON value the latency run reads.
type envelope struct {
	Payload struct {
		TsMs   int64 `json:"ts_ms"`
		Source struct {
			TsMs int64 `json:"ts_ms"`
		} `json:"source"`
	} `json:"payload"`
}

// runLatency streams a steady insert load through Sluice while a consumer
// measures how old each record is when it arrives.
func runLatency(ctx context.Context, e *env, o options) (*LatencyResult, error) {
	const db = "latency"
	dsn, err := e.pg.CreateDatabase(ctx, db)
	if err != nil {
		return nil, err
	}
	if err := e.pg.Exec(ctx, db, benchTable); err != nil {
		return nil, fmt.Errorf("create table: %w", err)
	}
	slot := (&spec.Source{Name: sourceName}).SlotName(instance)
	defer func() { _ = e.dropSlots(context.WithoutCancel(ctx), db, slot) }()
	p, err := e.startSluice(ctx, "latency", dsn, []string{"public.bench"})
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if err := waitSlot(ctx, dsn, slot, true, p.exited); err != nil {
		return nil, err
	}
	// A first row creates the topic, so the consumer starts on a topic that exists.
	if err := e.pg.Exec(ctx, db, "INSERT INTO bench (id) VALUES (0)"); err != nil {
		return nil, fmt.Errorf("warm-up insert: %w", err)
	}
	adm, err := newAdmin(p.addr)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	if _, _, err := waitRecords(ctx, adm, 1, time.Minute, p.exited, topicOf("bench")); err != nil {
		return nil, err
	}
	progress("inserting %d rows/s for %s", o.latencyRate, o.latencyDuration)
	res, err := measureLatency(ctx, dsn, p.addr, o)
	if err != nil {
		return nil, err
	}
	if res.SluicePeakRSSBytes, err = p.peakRSS(); err != nil {
		return nil, err
	}
	return res, p.exited()
}

// measureLatency runs the generator and the consumer side by side.
func measureLatency(ctx context.Context, dsn, addr string, o options) (*LatencyResult, error) {
	res := &LatencyResult{TargetRowsPerSec: o.latencyRate}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topicOf("bench")),
		kgo.ConsumeResetOffset(kgo.NewOffset().At(1)), kgo.FetchMaxWait(time.Second))
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer cl.Close()
	var mu sync.Mutex
	var e2e, enc []float64
	inserted := make(chan int64, 1) // the generator's final count, so the consumer knows when to stop
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		n, secs, err := generate(gctx, dsn, insertRange, o.latencyRate, o.latencyDuration)
		res.Rows, res.Seconds = n, secs
		inserted <- n
		return err
	})
	g.Go(func() error {
		return consume(gctx, cl, inserted, func(endToEnd, toEncode float64) {
			mu.Lock()
			e2e, enc = append(e2e, endToEnd), append(enc, toEncode)
			mu.Unlock()
		})
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res.Received = int64(len(e2e))
	res.AchievedRowsPerSec = ratio(float64(res.Rows), res.Seconds)
	res.EndToEnd, res.ToEncode = percentilesOf(e2e), percentilesOf(enc)
	return res, nil
}

// generate inserts rate rows per second for d, in one transaction every
// 10ms: rate/100 rows, or more when a slow insert left rows due (at most ten
// ticks' worth at once), so the average rate holds. Each transaction is one
// execution of insert, which inserts the ids from $1 to $2 (ids start at 1).
// It returns how many rows it inserted and how long it took.
func generate(ctx context.Context, dsn, insert string, rate int, d time.Duration) (int64, float64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, fmt.Errorf("generator: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The throwaway server commits asynchronously; then WAL reaches the
	// walsender only when the WAL writer flushes it (every 200ms), which
	// would dominate the figure. Production servers commit synchronously.
	if _, err := conn.Exec(ctx, "SET synchronous_commit = on"); err != nil {
		return 0, 0, fmt.Errorf("generator: %w", err)
	}
	perTick := int64(rate / 100)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	t0 := time.Now()
	var done int64
	for time.Since(t0) < d {
		select {
		case <-ctx.Done():
			return done, time.Since(t0).Seconds(), ctx.Err()
		case <-tick.C:
		}
		due := int64(time.Since(t0).Seconds()*float64(rate)) - done
		n := min(max(due, perTick), 10*perTick)
		if _, err := conn.Exec(ctx, insert, done+1, done+n); err != nil {
			return done, time.Since(t0).Seconds(), fmt.Errorf("generator: insert: %w", err)
		}
		done += n
	}
	return done, time.Since(t0).Seconds(), nil
}

// consume polls until it has seen as many records as the generator reports
// it inserted, calling observe with each record's age on receipt and at
// encoding, in milliseconds. It gives up a minute after the generator ends.
func consume(ctx context.Context, cl *kgo.Client, inserted <-chan int64, observe func(endToEnd, toEncode float64)) error {
	var seen int64
	want := int64(-1)
	var deadline <-chan time.Time
	for want < 0 || seen < want {
		select {
		case want = <-inserted:
			deadline = time.After(time.Minute)
			continue
		case <-deadline:
			return fmt.Errorf("consumer: %d of %d records arrived within a minute of the last insert", seen, want)
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		now := time.Now()
		if err := ctx.Err(); err != nil {
			return err
		}
		var perr error
		fs.EachError(func(_ string, _ int32, err error) {
			if err != context.DeadlineExceeded {
				perr = err
			}
		})
		if perr != nil {
			return fmt.Errorf("consumer: %w", perr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var env envelope
			if err := json.Unmarshal(r.Value, &env); err != nil || env.Payload.Source.TsMs == 0 {
				perr = fmt.Errorf("consumer: record at offset %d has no payload.source.ts_ms: %v", r.Offset, err)
				return
			}
			seen++
			commit := time.UnixMilli(env.Payload.Source.TsMs)
			observe(ms(now.Sub(commit)), ms(time.UnixMilli(env.Payload.TsMs).Sub(commit)))
		})
		if perr != nil {
			return perr
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
