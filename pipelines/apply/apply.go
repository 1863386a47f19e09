// Package apply runs the apply leg of a pipeline (DESIGN.md section 4):
// consume the source's topics from Kafka, decode each change, run it
// through the pipeline's stages and hand the result to the sink, which
// commits the rows together with the consumed offsets.
//
// Offsets live in the destination, not in a consumer group: on start the
// runner asks the sink where its last committed batch ended and consumes
// from exactly there, so every change is applied once whatever the moment
// of a crash. Memory is bounded: the runner polls at most one batch at a
// time and franz-go stops fetching while the buffered fetches are not
// consumed, so a slow destination makes Kafka buffer, not the process.
package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/debezium"
)

// Decoder turns a Kafka record's key and value back into a change.
type Decoder interface {
	Decode(key, value []byte) (cdc.Record, error)
}

// Stages transforms one change into the records to apply.
type Stages interface {
	Apply(ctx context.Context, r cdc.Record) ([]cdc.Record, error)
}

// Runner runs one pipeline.
type Runner struct {
	// Name is the pipeline's name, for logs.
	Name string
	// Topics are the source topics to consume.
	Topics []string
	// ClientOpts connect to Kafka (brokers, TLS, SASL).
	ClientOpts []kgo.Opt
	Decoder    Decoder
	Stages     Stages
	Sink       cdc.Sink
	// BatchRows bounds the Kafka records applied in one transaction.
	BatchRows int
	// DeadLetterTopic receives the records that cannot be decoded or
	// transformed, with headers saying why and where they came from.
	DeadLetterTopic string
	// EnsureTopic creates the dead-letter topic when it is missing.
	EnsureTopic func(ctx context.Context, topic string) error
	// StopOnError stops the pipeline at a record that cannot be decoded,
	// transformed or written, instead of dead-lettering it.
	StopOnError bool
	Logger      *slog.Logger
	Stats       *Stats
	// Metrics, when set, is told what the runner does (see Metrics).
	Metrics Metrics
}

// Metrics receives what a Runner does, for monitoring (package observe
// implements it). Its methods are called from several of the runner's
// goroutines at once (transforming runs in parallel), so they must be safe
// for concurrent use, and must not block.
type Metrics interface {
	// Connecting is called when the runner starts, Connected when a
	// session consumes (sink open, partitions assigned), and Disconnected
	// when a session ends: with its error, or nil when the runner stops.
	Connecting()
	Connected()
	Disconnected(err error)
	// Consumed counts Kafka records polled.
	Consumed(n int)
	// ObserveStage counts what a stage did: records given to it, records
	// it returned, inputs it turned into nothing. Decoding is the stage
	// "decode".
	ObserveStage(stage string, in, out, dropped int)
	// DeadLettered counts records sent to the dead-letter topic.
	DeadLettered(stage string, n int)
	// Applied is called after a batch committed, with its records and how
	// long writing it took.
	Applied(records []cdc.Record, took time.Duration)
	// Lag is called after each batch with the records on Kafka not yet
	// applied and the Kafka time of the newest record consumed.
	Lag(records int64, newestConsumed time.Time)
}

type nopMetrics struct{}

func (nopMetrics) Connecting()                         {}
func (nopMetrics) Connected()                          {}
func (nopMetrics) Disconnected(error)                  {}
func (nopMetrics) Consumed(int)                        {}
func (nopMetrics) ObserveStage(string, int, int, int)  {}
func (nopMetrics) DeadLettered(string, int)            {}
func (nopMetrics) Applied([]cdc.Record, time.Duration) {}
func (nopMetrics) Lag(int64, time.Time)                {}

// Stats are the live counters of a pipeline; safe for concurrent reads.
type Stats struct {
	Consumed     atomic.Int64 // Kafka records consumed (tombstones included)
	Applied      atomic.Int64 // records written to the destination
	DeadLettered atomic.Int64 // records sent to the dead-letter topic
	Batches      atomic.Int64 // committed destination transactions
	// Lag is the records on Kafka not yet applied (at the last poll).
	Lag atomic.Int64
	// LastLatency is source commit -> destination commit of the newest
	// record of the last batch, in nanoseconds.
	LastLatency atomic.Int64
	// LastCommit is the Unix nanoseconds of the last destination commit.
	LastCommit atomic.Int64
}

// Headers the runner puts on dead-letter records.
const (
	HeaderError     = "sluice.error"
	HeaderStage     = "sluice.stage"
	HeaderTopic     = "sluice.topic"
	HeaderPartition = "sluice.partition"
	HeaderOffset    = "sluice.offset"
)

// Run consumes and applies until ctx is cancelled (returning nil after a
// clean stop) or a failure that retrying cannot fix (a permanent error).
//
// Any other failure (the destination or Kafka unreachable) starts a new
// session after a backoff: the sink is opened again and consumption
// resumes from the offsets the destination holds. Resuming from the
// destination's truth, not from what this process believes it applied,
// matters when a destination lost recent commits in a crash (asynchronous
// commit, failover to a replica): those batches are applied again.
func (r *Runner) Run(ctx context.Context) error {
	if r.Stats == nil {
		r.Stats = &Stats{}
	}
	if r.BatchRows <= 0 {
		r.BatchRows = 5000
	}
	if r.Metrics == nil {
		r.Metrics = nopMetrics{}
	}
	r.Metrics.Connecting()
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 200*time.Millisecond, 30*time.Second
	bo.RandomizationFactor = 0.2
	for attempt := 1; ; attempt++ {
		applied := r.Stats.Batches.Load()
		err := r.session(ctx)
		if ctx.Err() != nil {
			r.Metrics.Disconnected(nil)
			return nil
		}
		r.Metrics.Disconnected(err)
		var perm *cdc.PermanentError
		if errors.As(err, &perm) {
			return err
		}
		if r.Stats.Batches.Load() > applied {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		r.Logger.Warn("pipeline interrupted; retrying from the offsets stored in the destination",
			"err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			r.Metrics.Disconnected(nil)
			return nil
		case <-time.After(wait):
		}
	}
}

// session opens the sink, consumes from the offsets it returns and applies
// batches until ctx ends or something fails.
func (r *Runner) session(ctx context.Context) (err error) {
	offsets, err := r.Sink.Open(ctx)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if cerr := r.Sink.Close(cctx); cerr != nil && err == nil && ctx.Err() == nil {
			err = fmt.Errorf("close sink: %w", cerr)
		}
	}()
	if err != nil {
		return fmt.Errorf("open sink: %w", err)
	}
	opts := append(slices.Clone(r.ClientOpts),
		// Limits on compressed bytes: JSON change events compress 40-80:1,
		// and franz-go holds a fetch decompressed in memory.
		kgo.FetchMaxBytes(4<<20),
		kgo.FetchMaxPartitionBytes(512<<10),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	opts = append(opts, fetchMemory()...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	assign, err := r.assignment(ctx, kadm.NewClient(cl), offsets)
	if err != nil {
		return err
	}
	cl.AddConsumePartitions(assign)
	r.Metrics.Connected()
	r.Logger.Info("pipeline consuming", "topics", len(r.Topics), "partitions", countPartitions(assign),
		"resumed", len(offsets) > 0)
	return r.loop(ctx, cl)
}

// assignment waits until every topic exists and returns where to consume
// each partition from: the stored offset, or the start of the log.
func (r *Runner) assignment(ctx context.Context, adm *kadm.Client, stored cdc.Offsets) (map[string]map[int32]kgo.Offset, error) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 250*time.Millisecond, 2*time.Second
	for {
		ends, err := adm.ListEndOffsets(ctx, r.Topics...)
		var missing []string
		if err == nil {
			for _, t := range r.Topics {
				ps, ok := ends[t]
				if !ok || len(ps) == 0 {
					missing = append(missing, t)
					continue
				}
				for _, p := range ps {
					if p.Err != nil {
						if !errors.Is(p.Err, kerr.UnknownTopicOrPartition) {
							err = fmt.Errorf("topic %s: %w", t, p.Err)
						}
						missing = append(missing, t)
						break
					}
				}
			}
		}
		if err == nil && len(missing) == 0 {
			assign := map[string]map[int32]kgo.Offset{}
			for t, ps := range ends {
				assign[t] = map[int32]kgo.Offset{}
				for p := range ps {
					off := kgo.NewOffset().AtStart()
					if o, ok := stored[cdc.TopicPartition{Topic: t, Partition: p}]; ok {
						off = kgo.NewOffset().At(o)
					}
					assign[t][p] = off
				}
			}
			return assign, nil
		}
		wait := bo.NextBackOff()
		if err != nil {
			r.Logger.Warn("waiting for Kafka", "err", err, "retry_in", wait)
		} else {
			r.Logger.Info("waiting for the source to create its topics", "missing", missing, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func countPartitions(a map[string]map[int32]kgo.Offset) int {
	n := 0
	for _, ps := range a {
		n += len(ps)
	}
	return n
}

// polled is one poll's worth of Kafka records, decoded and transformed,
// ready to write.
type polled struct {
	items       []item
	dead        []*kgo.Record // records that could not be decoded or transformed
	deadErr     error         // the first reason, for StopOnError
	offsets     cdc.Offsets
	hwm         map[cdc.TopicPartition]int64
	newest      time.Time    // newest source commit time among the outputs
	newestKafka time.Time    // newest Kafka timestamp consumed
	records     int          // output records
	recs        []cdc.Record // the output records, once batch made them
}

// batch returns the output records, in order, in one slice: the same
// slice each time.
func (p *polled) batch() []cdc.Record {
	if p.recs == nil {
		p.recs = make([]cdc.Record, 0, p.records)
		for _, it := range p.items {
			p.recs = append(p.recs, it.out...)
		}
	}
	return p.recs
}

// preparer is a sink that can do part of a Write ahead of it, from
// another goroutine than the writing one, given the very slice Write will
// be given (postgres.Sink.Prepare).
type preparer interface {
	Prepare(recs []cdc.Record)
}

// recycle hands the records' memory back to the fetch pool (see
// fetchPool): once the batch is applied nothing reads them.
func (p *polled) recycle() {
	for _, it := range p.items {
		it.rec.Recycle()
	}
	p.items = nil
}

// item is one Kafka record and what the stages made of it.
type item struct {
	rec  *kgo.Record
	tp   cdc.TopicPartition
	out  []cdc.Record
	dead *kgo.Record // the dead letter, when rec could not be processed
}

// loop polls, transforms and applies batches until ctx ends. Polling and
// transforming the next batch overlaps with writing the current one: the
// two run in their own goroutines, with one batch handed between them, so
// memory holds at most three batches (one fetched by franz-go, one
// transformed, one being written), and what a preparer made of those
// waiting.
//
// The poller decodes on every CPU while the writer keeps up with it. When
// the writer is the slower of the two (a full hand-off: it has not taken
// the previous batch yet), the next batch is decoded on one CPU fewer:
// decoding sooner gains nothing then, and the CPU it would take is the
// one the writer, and a destination database on the same host, are
// waiting for. On the benchmark (2 CPUs, PostgreSQL on the host) that
// made applying 1M upserts about 10% faster. And a batch that finds the
// hand-off full, and so has to wait, is first given to a sink that can
// prepare part of its write (preparer), which takes that work off the
// writer's path.
func (r *Runner) loop(ctx context.Context, cl *kgo.Client) error {
	g, gctx := errgroup.WithContext(ctx)
	ready := make(chan *polled, 1)
	g.Go(func() error {
		defer close(ready)
		hwm := map[cdc.TopicPartition]int64{}
		procs := runtime.GOMAXPROCS(0)
		prep, _ := r.Sink.(preparer)
		for {
			p, err := r.poll(gctx, cl, hwm, procs)
			if err != nil || gctx.Err() != nil {
				return err
			}
			if p == nil {
				continue
			}
			if prep != nil && len(ready) == cap(ready) {
				// This batch waits for the one in the hand-off
				// anyway: do part of its write meanwhile.
				prep.Prepare(p.batch())
			}
			select {
			case ready <- p:
				procs = runtime.GOMAXPROCS(0)
				continue
			default:
			}
			procs = max(1, runtime.GOMAXPROCS(0)-1)
			select {
			case ready <- p:
			case <-gctx.Done():
				return nil
			}
		}
	})
	g.Go(func() error {
		for p := range ready {
			if err := r.applyPolled(gctx, cl, p); err != nil {
				return err
			}
			p.recycle()
		}
		return nil
	})
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// poll fetches up to BatchRows records and transforms them on up to procs
// goroutines; nil when there was nothing.
func (r *Runner) poll(ctx context.Context, cl *kgo.Client, hwm map[cdc.TopicPartition]int64, procs int) (*polled, error) {
	fetches := cl.PollRecords(ctx, r.BatchRows)
	if ctx.Err() != nil {
		return nil, nil
	}
	var ferr error
	fetches.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.Canceled) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s[%d]: %w", t, p, err))
		}
	})
	if ferr != nil {
		r.Logger.Warn("fetch failed; retrying", "err", ferr)
	}
	n := fetches.NumRecords()
	p := &polled{offsets: cdc.Offsets{}, items: make([]item, 0, n)}
	recs := make([]*kgo.Record, 0, n)
	tps := make([]cdc.TopicPartition, 0, n)
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		tp := cdc.TopicPartition{Topic: fp.Topic, Partition: fp.Partition}
		hwm[tp] = fp.HighWatermark
		for _, rec := range fp.Records {
			recs = append(recs, rec)
			tps = append(tps, tp)
		}
	})
	r.Stats.Consumed.Add(int64(len(recs)))
	r.Metrics.Consumed(len(recs))
	outs, errs := r.transformAll(ctx, recs, procs)
	var failed error
	for i, rec := range recs {
		tp := tps[i]
		p.offsets[tp] = rec.Offset + 1
		if rec.Timestamp.After(p.newestKafka) {
			p.newestKafka = rec.Timestamp
		}
		if err := errs[i]; err != nil {
			var dl *deadLetter
			if !errors.As(err, &dl) {
				failed = err
				break
			}
			d := dl.record(rec)
			p.dead = append(p.dead, d)
			if p.deadErr == nil {
				p.deadErr = fmt.Errorf("%s[%d] offset %d: %s: %w", rec.Topic, rec.Partition, rec.Offset, dl.stage, dl.err)
			}
			// Its offset is committed with the others once the
			// dead letter is safe on Kafka.
			p.items = append(p.items, item{rec: rec, tp: tp, dead: d})
			continue
		}
		out := outs[i]
		for _, o := range out {
			if o.CommitTime.After(p.newest) {
				p.newest = o.CommitTime
			}
		}
		p.records += len(out)
		p.items = append(p.items, item{rec: rec, tp: tp, out: out})
	}
	if failed != nil {
		return nil, failed
	}
	if len(p.offsets) == 0 {
		return nil, nil
	}
	// The batch gets its own copy of the high watermarks: the writer reads
	// them while the next poll updates hwm.
	p.hwm = maps.Clone(hwm)
	return p, nil
}

// applyPolled writes one transformed batch with its offsets. Records that
// could not be decoded or transformed go to the dead-letter topic first
// (or, with StopOnError, stop the pipeline). When the sink rejects the
// batch for good, it is written again one Kafka record per transaction,
// so that only the records the destination refuses go to the dead-letter
// topic (with StopOnError, the first one stops the pipeline).
func (r *Runner) applyPolled(ctx context.Context, cl *kgo.Client, p *polled) error {
	if len(p.dead) > 0 {
		if r.StopOnError {
			return cdc.Permanent(fmt.Errorf("a record cannot be processed (errors: stop): %w", p.deadErr))
		}
		if err := r.deadLetter(ctx, cl, p.dead); err != nil {
			return err
		}
	}
	batch := cdc.Applied{Offsets: p.offsets, Records: p.batch()}
	started := time.Now()
	err := r.write(ctx, batch)
	var perm *cdc.PermanentError
	if errors.As(err, &perm) && !r.StopOnError {
		r.Logger.Warn("the destination rejected a batch; applying it record by record to set the culprits aside",
			"records", len(batch.Records), "err", err)
		err = r.isolate(ctx, cl, p)
	}
	if err != nil {
		return err
	}
	now := time.Now()
	r.Metrics.Applied(batch.Records, now.Sub(started))
	r.Stats.Applied.Add(int64(len(batch.Records)))
	r.Stats.Batches.Add(1)
	r.Stats.LastCommit.Store(now.UnixNano())
	if !p.newest.IsZero() {
		r.Stats.LastLatency.Store(int64(now.Sub(p.newest)))
	}
	var lag int64
	for tp, end := range p.hwm {
		if next, ok := p.offsets[tp]; ok && next < end {
			lag += end - next
		}
	}
	r.Stats.Lag.Store(lag)
	r.Metrics.Lag(lag, p.newestKafka)
	return nil
}

// isolate writes a batch one Kafka record per transaction (each with its
// own offset); a record the sink rejects for good goes to the dead-letter
// topic and its offset is committed without it.
func (r *Runner) isolate(ctx context.Context, cl *kgo.Client, p *polled) error {
	for _, it := range p.items {
		offs := cdc.Offsets{it.tp: it.rec.Offset + 1}
		err := r.write(ctx, cdc.Applied{Records: it.out, Offsets: offs})
		var perm *cdc.PermanentError
		if !errors.As(err, &perm) {
			if err != nil {
				return err
			}
			continue
		}
		dl := &deadLetter{stage: "sink", err: err}
		if err := r.deadLetter(ctx, cl, []*kgo.Record{dl.record(it.rec)}); err != nil {
			return err
		}
		if err := r.write(ctx, cdc.Applied{Offsets: offs}); err != nil {
			return err
		}
	}
	return nil
}

// deadLetter is a record the pipeline cannot process, and why.
type deadLetter struct {
	stage string
	err   error
}

func (d *deadLetter) Error() string { return d.err.Error() }

func (d *deadLetter) record(rec *kgo.Record) *kgo.Record {
	return &kgo.Record{
		Key:   rec.Key,
		Value: rec.Value,
		Headers: append(slices.Clone(rec.Headers),
			kgo.RecordHeader{Key: HeaderError, Value: []byte(d.err.Error())},
			kgo.RecordHeader{Key: HeaderStage, Value: []byte(d.stage)},
			kgo.RecordHeader{Key: HeaderTopic, Value: []byte(rec.Topic)},
			kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(rec.Partition)))},
			kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
		),
	}
}

// transformAll transforms recs, on up to procs goroutines on large polls:
// decoding is most of a pipeline's CPU. Results are in the order of recs;
// errs[i] is the error of recs[i].
func (r *Runner) transformAll(ctx context.Context, recs []*kgo.Record, procs int) ([][]cdc.Record, []error) {
	outs := make([][]cdc.Record, len(recs))
	errs := make([]error, len(recs))
	run := func(lo, hi int) {
		var t decodeTally
		for i := lo; i < hi; i++ {
			outs[i], errs[i] = r.transform(ctx, recs[i], &t)
		}
		if t.in > 0 {
			r.Metrics.ObserveStage("decode", t.in, t.out, t.dropped)
		}
	}
	workers := min(procs, len(recs)/minParallelRecords)
	if workers <= 1 {
		run(0, len(recs))
		return outs, errs
	}
	var wg sync.WaitGroup
	per := (len(recs) + workers - 1) / workers
	for lo := 0; lo < len(recs); lo += per {
		wg.Go(func() { run(lo, min(lo+per, len(recs))) })
	}
	wg.Wait()
	return outs, errs
}

// minParallelRecords is the fewest records per goroutine worth
// transforming in parallel.
const minParallelRecords = 256

// What the decode step did, counted over many records and reported at
// once: metrics are shared by the goroutines of transformAll.
type decodeTally struct{ in, out, dropped int }

// transform decodes one Kafka record and runs it through the stages.
// Tombstones produce nothing (the delete before them did the work).
func (r *Runner) transform(ctx context.Context, rec *kgo.Record, t *decodeTally) ([]cdc.Record, error) {
	t.in++
	c, err := r.Decoder.Decode(rec.Key, rec.Value)
	if errors.Is(err, debezium.ErrTombstone) {
		t.dropped++
		return nil, nil
	}
	if err != nil {
		return nil, &deadLetter{stage: "decode", err: err}
	}
	if c.Op == cdc.OpTruncate {
		t.dropped++
		return nil, nil
	}
	t.out++
	out, err := r.Stages.Apply(ctx, c)
	if err != nil {
		stage := "stages"
		var se interface{ StageName() string }
		if errors.As(err, &se) {
			stage = se.StageName()
		}
		return nil, &deadLetter{stage: stage, err: err}
	}
	return out, nil
}

// deadLetter produces records to the dead-letter topic and waits for
// Kafka to acknowledge them: they must be safe before the batch that
// skips them commits its offsets.
func (r *Runner) deadLetter(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if r.DeadLetterTopic == "" {
		return cdc.Permanent(fmt.Errorf("%d records could not be processed and no dead-letter topic is configured", len(recs)))
	}
	if r.EnsureTopic != nil {
		if err := r.EnsureTopic(ctx, r.DeadLetterTopic); err != nil {
			return fmt.Errorf("dead-letter topic: %w", err)
		}
	}
	for _, rec := range recs {
		rec.Topic = r.DeadLetterTopic
		r.Logger.Warn("record sent to the dead-letter topic", "topic", r.DeadLetterTopic,
			"from", headerValue(rec, HeaderTopic), "offset", headerValue(rec, HeaderOffset),
			"stage", headerValue(rec, HeaderStage), "err", headerValue(rec, HeaderError))
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce to dead-letter topic %s: %w", r.DeadLetterTopic, err)
	}
	r.Stats.DeadLettered.Add(int64(len(recs)))
	for _, rec := range recs {
		r.Metrics.DeadLettered(headerValue(rec, HeaderStage), 1)
	}
	return nil
}

func headerValue(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// write applies a batch. A permanent error is wrapped with the batch size;
// any other ends the session (see Run).
func (r *Runner) write(ctx context.Context, b cdc.Applied) error {
	if err := r.Sink.Write(ctx, b); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("apply batch of %d records: %w", len(b.Records), err)
	}
	return nil
}

// Reprocess runs the records of the dead-letter topic through the current
// stages and sink, from where the last reprocessing stopped (an offset the
// sink stores like any other) up to the end the topic had when it started.
// Records that fail again go back to the dead-letter topic, after that
// end. It returns how many records it took from the topic and how many of
// them failed again. The runner's Topics are ignored.
func (r *Runner) Reprocess(ctx context.Context) (taken, failedAgain int64, err error) {
	if r.Stats == nil {
		r.Stats = &Stats{}
	}
	if r.Metrics == nil {
		r.Metrics = nopMetrics{}
	}
	if r.BatchRows <= 0 {
		r.BatchRows = 5000
	}
	offsets, err := r.Sink.Open(ctx)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = r.Sink.Close(cctx)
	}()
	if err != nil {
		return 0, 0, fmt.Errorf("open sink: %w", err)
	}
	opts := append(slices.Clone(r.ClientOpts), kgo.FetchMaxBytes(4<<20), kgo.FetchMaxPartitionBytes(512<<10))
	cl, err := kgo.NewClient(append(opts, fetchMemory()...)...)
	if err != nil {
		return 0, 0, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, r.DeadLetterTopic)
	if err != nil {
		return 0, 0, fmt.Errorf("dead-letter topic %s: %w", r.DeadLetterTopic, err)
	}
	assign := map[int32]kgo.Offset{}
	until := map[cdc.TopicPartition]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		tp := cdc.TopicPartition{Topic: o.Topic, Partition: o.Partition}
		from, ok := offsets[tp]
		if o.Err != nil || o.Offset <= from {
			return
		}
		off := kgo.NewOffset().AtStart()
		if ok {
			off = kgo.NewOffset().At(from)
		}
		assign[o.Partition] = off
		until[tp] = o.Offset
	})
	if len(assign) == 0 {
		return 0, 0, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{r.DeadLetterTopic: assign})
	deadBefore := r.Stats.DeadLettered.Load()
	hwm := map[cdc.TopicPartition]int64{}
	for len(until) > 0 {
		p, err := r.poll(ctx, cl, hwm, runtime.GOMAXPROCS(0))
		if err != nil {
			return taken, r.Stats.DeadLettered.Load() - deadBefore, err
		}
		if ctx.Err() != nil {
			return taken, r.Stats.DeadLettered.Load() - deadBefore, ctx.Err()
		}
		if p == nil {
			continue
		}
		// Keep only what was there when reprocessing started: records
		// dead-lettered again by this run wait for the next one.
		polledItems := slices.Clone(p.items) // all of them go back to the pool
		kept := p.items[:0]
		p.dead, p.records = nil, 0
		for _, it := range p.items {
			if end, ok := until[it.tp]; ok && it.rec.Offset < end {
				kept = append(kept, it)
				p.records += len(it.out)
				if it.dead != nil {
					p.dead = append(p.dead, it.dead)
				}
			}
		}
		p.items = kept
		for tp, next := range p.offsets {
			if end, ok := until[tp]; ok && next > end {
				p.offsets[tp] = end
			}
		}
		taken += int64(len(p.items))
		if err := r.applyPolled(ctx, cl, p); err != nil {
			return taken, r.Stats.DeadLettered.Load() - deadBefore, err
		}
		p.items = polledItems
		p.recycle()
		for tp, next := range p.offsets {
			if next >= until[tp] {
				delete(until, tp)
			}
		}
	}
	return taken, r.Stats.DeadLettered.Load() - deadBefore, nil
}
