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
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

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
	Logger      *slog.Logger
	Stats       *Stats
}

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
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 200*time.Millisecond, 30*time.Second
	bo.RandomizationFactor = 0.2
	for attempt := 1; ; attempt++ {
		applied := r.Stats.Batches.Load()
		err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
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
		kgo.FetchMaxBytes(16<<20),
		kgo.FetchMaxPartitionBytes(8<<20),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
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
	r.Logger.Info("pipeline consuming", "topics", len(r.Topics), "partitions", countPartitions(assign),
		"resumed", len(offsets) > 0)
	return r.loop(ctx, cl)
}

// assignment waits until every topic exists and returns where to consume
// each partition from: the stored offset, or the start of the log.
func (r *Runner) assignment(ctx context.Context, adm *kadm.Client, stored cdc.Offsets) (map[string]map[int32]kgo.Offset, error) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 500*time.Millisecond, 10*time.Second
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

// loop polls, transforms and applies batches until ctx ends.
func (r *Runner) loop(ctx context.Context, cl *kgo.Client) error {
	hwm := map[cdc.TopicPartition]int64{}
	for {
		fetches := cl.PollRecords(ctx, r.BatchRows)
		if ctx.Err() != nil {
			return nil
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
		batch := cdc.Applied{Offsets: cdc.Offsets{}}
		var dead []*kgo.Record
		var newest time.Time
		var failed error
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			tp := cdc.TopicPartition{Topic: p.Topic, Partition: p.Partition}
			hwm[tp] = p.HighWatermark
			for _, rec := range p.Records {
				if failed != nil {
					return
				}
				r.Stats.Consumed.Add(1)
				batch.Offsets[tp] = rec.Offset + 1
				out, err := r.transform(ctx, rec)
				if err != nil {
					var dl *deadLetter
					if errors.As(err, &dl) {
						dead = append(dead, dl.record(rec))
						continue
					}
					failed = err
					return
				}
				for _, o := range out {
					if o.CommitTime.After(newest) {
						newest = o.CommitTime
					}
				}
				batch.Records = append(batch.Records, out...)
			}
		})
		if failed != nil {
			return failed
		}
		if len(batch.Offsets) == 0 {
			continue
		}
		if len(dead) > 0 {
			if err := r.deadLetter(ctx, cl, dead); err != nil {
				return err
			}
		}
		if err := r.write(ctx, batch); err != nil {
			return err
		}
		now := time.Now()
		r.Stats.Applied.Add(int64(len(batch.Records)))
		r.Stats.Batches.Add(1)
		r.Stats.LastCommit.Store(now.UnixNano())
		if !newest.IsZero() {
			r.Stats.LastLatency.Store(int64(now.Sub(newest)))
		}
		var lag int64
		for tp, end := range hwm {
			if next, ok := batch.Offsets[tp]; ok && next < end {
				lag += end - next
			}
		}
		r.Stats.Lag.Store(lag)
	}
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

// transform decodes one Kafka record and runs it through the stages.
// Tombstones produce nothing (the delete before them did the work).
func (r *Runner) transform(ctx context.Context, rec *kgo.Record) ([]cdc.Record, error) {
	c, err := r.Decoder.Decode(rec.Key, rec.Value)
	if errors.Is(err, debezium.ErrTombstone) {
		return nil, nil
	}
	if err != nil {
		return nil, &deadLetter{stage: "decode", err: err}
	}
	if c.Op == cdc.OpTruncate {
		return nil, nil
	}
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
