// Package capture runs a source: it reads changes from a cdc.Source,
// produces them to Kafka (one topic per table, keyed by primary key, a
// tombstone after each delete), and moves the source's checkpoint forward
// only when Kafka has acknowledged every record before it. The checkpoint is
// stored in Kafka before the source is told (Ack), so a restart at any
// moment resumes from a point where nothing before it is missing.
package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Encoder turns a record into a Kafka key and value.
type Encoder interface {
	EncodeKey(r cdc.Record) ([]byte, error)
	EncodeValue(r cdc.Record) ([]byte, error)
}

// CheckpointStore keeps the last durable checkpoint of each source.
type CheckpointStore interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Save(ctx context.Context, key string, value []byte) error
}

// TopicEnsurer creates a topic if it does not exist.
type TopicEnsurer interface {
	Ensure(ctx context.Context, topic string, o broker.TopicOptions) error
}

// Runner captures one source into Kafka. Fill every field, then call Run.
type Runner struct {
	// Name identifies the source; it is the checkpoint's key.
	Name     string
	Source   cdc.Source
	Producer *kgo.Client
	Topics   TopicEnsurer
	// TopicOptions are used when a table's topic is created.
	TopicOptions broker.TopicOptions
	// TopicFor names the topic of a table.
	TopicFor    func(cdc.TableID) string
	Encoder     Encoder
	Checkpoints CheckpointStore
	Logger      *slog.Logger
	// CommitInterval is how often the durable checkpoint is stored and
	// acknowledged to the source (default 500ms).
	CommitInterval time.Duration
	// Stats, when set, counts what the runner did.
	Stats *Stats
	// MaxRecordBytes, when set, is the largest key+value the producer can
	// send; a larger record stops the source with an error naming it
	// instead of failing inside the producer.
	MaxRecordBytes int
	// Metrics, when set, is told what the runner does (see Metrics).
	Metrics Metrics
}

// Metrics receives what a Runner does, for monitoring (package observe
// implements it). Its methods are called from the runner's goroutines,
// also concurrently, and must not block.
type Metrics interface {
	// Connecting is called when a run starts, Connected once the source
	// is open, and Disconnected when the run ends: with its error, or nil
	// when it was stopped.
	Connecting()
	Connected()
	Disconnected(err error)
	// Captured is called for each change handed to the producer, with the
	// bytes produced for it (key, value and any tombstone).
	Captured(table cdc.TableID, op cdc.Op, bytes int)
	// Acked is called when Kafka acknowledged a change, with the time
	// from its commit in the source (for snapshot reads: from the
	// snapshot's start).
	Acked(table cdc.TableID, op cdc.Op, lag time.Duration)
	// Checkpointed is called after each checkpoint is stored.
	Checkpointed()
}

type nopMetrics struct{}

func (nopMetrics) Connecting()                              {}
func (nopMetrics) Connected()                               {}
func (nopMetrics) Disconnected(error)                       {}
func (nopMetrics) Captured(cdc.TableID, cdc.Op, int)        {}
func (nopMetrics) Acked(cdc.TableID, cdc.Op, time.Duration) {}
func (nopMetrics) Checkpointed()                            {}

// Stats counts a runner's work; safe to read while it runs.
type Stats struct {
	Captured  atomic.Int64 // records handed to the producer
	Acked     atomic.Int64 // records Kafka acknowledged
	Bytes     atomic.Int64 // key+value bytes produced
	Committed atomic.Int64 // checkpoints stored
	// LastCommitLag is the source-commit-to-ack time of the newest acked
	// record, in nanoseconds.
	LastCommitLag atomic.Int64
}

// Run captures until ctx is cancelled or something fails. On cancellation it
// waits (bounded) for records in flight, stores the final checkpoint and
// returns nil; on failure it returns the error and the caller restarts it.
func (r *Runner) Run(ctx context.Context) (err error) {
	if r.CommitInterval == 0 {
		r.CommitInterval = 500 * time.Millisecond
	}
	if r.Stats == nil {
		r.Stats = &Stats{}
	}
	if r.Metrics == nil {
		r.Metrics = nopMetrics{}
	}
	r.Metrics.Connecting()
	defer func() { r.Metrics.Disconnected(err) }()
	log := r.Logger.With("source", r.Name)
	from, err := r.Checkpoints.Get(ctx, r.Name)
	if err != nil {
		return fmt.Errorf("source %s: load checkpoint: %w", r.Name, err)
	}
	closeSource := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.Source.Close(cctx); err != nil {
			log.Warn("closing source", "err", err)
		}
	}
	if err := r.Source.Open(ctx, from); err != nil {
		closeSource() // a half-open source holds connections
		if ctx.Err() != nil {
			return nil // stopped while opening: a clean stop
		}
		return fmt.Errorf("source %s: open: %w", r.Name, err)
	}
	defer closeSource()
	r.Metrics.Connected()

	log.Info("capturing", "resume", from != nil)

	tr := newTracker()
	g, gctx := errgroup.WithContext(ctx)
	// Records are produced under their own context: kgo fails buffered
	// records whose context ends, and those handed over before a stop or a
	// failure should still be delivered. It ends drainTimeout after the run
	// does, so a producer blocked on a full buffer (Kafka down) lets go.
	pctx, cancelProduce := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProduce()
	stopDrainTimer := context.AfterFunc(gctx, func() { time.AfterFunc(drainTimeout, cancelProduce) })
	defer stopDrainTimer()
	readerDone := make(chan struct{})
	g.Go(func() error {
		defer close(readerDone)
		return r.read(gctx, pctx, tr)
	})
	g.Go(func() error { return r.commitLoop(gctx, tr, readerDone) })
	err = g.Wait()

	// Drain: whatever was handed to the producer gets a bounded chance to be
	// acknowledged, and the newest durable checkpoint is stored, so a clean
	// stop does not make the next run repeat work.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	if ferr := r.Producer.Flush(fctx); ferr != nil {
		log.Warn("flushing producer on stop", "err", ferr)
	}
	if cerr := r.commit(fctx, tr); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// drainTimeout bounds how long a stopping runner waits for records in
// flight.
const drainTimeout = 10 * time.Second

// read moves batches from the source to the producer; records are produced
// under pctx (see Run).
func (r *Runner) read(ctx, pctx context.Context, tr *tracker) error {
	for {
		b, err := r.Source.Read(ctx)
		if err != nil {
			return fmt.Errorf("source %s: read: %w", r.Name, err)
		}
		for i := range b.Records {
			if err := r.produce(ctx, pctx, tr, &b.Records[i]); err != nil {
				return err
			}
		}
		if b.Checkpoint != nil {
			tr.checkpoint(b.Checkpoint)
		}
		if err := tr.err(); err != nil {
			return fmt.Errorf("source %s: produce: %w", r.Name, err)
		}
	}
}

func (r *Runner) produce(ctx, pctx context.Context, tr *tracker, rec *cdc.Record) error {
	topic := r.TopicFor(rec.Table)
	if err := r.Topics.Ensure(ctx, topic, r.TopicOptions); err != nil {
		return err
	}
	key, err := r.Encoder.EncodeKey(*rec)
	if err != nil {
		return fmt.Errorf("source %s: encode key of %s: %w", r.Name, rec.Table, err)
	}
	val, err := r.Encoder.EncodeValue(*rec)
	if err != nil {
		return fmt.Errorf("source %s: encode %s: %w", r.Name, rec.Table, err)
	}
	if r.MaxRecordBytes > 0 && len(key)+len(val) > r.MaxRecordBytes-1024 {
		return cdc.Permanent(fmt.Errorf("source %s: a change of %s (key %s) is %d bytes as JSON, above the %d-byte record limit",
			r.Name, rec.Table, key, len(key)+len(val), r.MaxRecordBytes))
	}
	size := len(key) + len(val)
	if rec.Op == cdc.OpDelete {
		size += len(key) // the tombstone
	}
	r.Metrics.Captured(rec.Table, rec.Op, size)
	r.send(pctx, tr, &kgo.Record{Topic: topic, Key: key, Value: val}, rec)
	if rec.Op == cdc.OpDelete {
		// The tombstone lets compaction drop the row's history.
		r.send(pctx, tr, &kgo.Record{Topic: topic, Key: key}, nil)
	}
	return nil
}

// send produces asynchronously; kgo blocks here once its buffer is full,
// which is the backpressure that keeps memory bounded. rec is the change
// kr carries (nil for a tombstone).
func (r *Runner) send(ctx context.Context, tr *tracker, kr *kgo.Record, rec *cdc.Record) {
	seq := tr.add()
	r.Stats.Captured.Add(1)
	r.Stats.Bytes.Add(int64(len(kr.Key) + len(kr.Value)))
	var commit time.Time
	var table cdc.TableID
	var op cdc.Op
	if rec != nil {
		commit, table, op = rec.CommitTime, rec.Table, rec.Op
	}
	r.Producer.Produce(ctx, kr, func(_ *kgo.Record, err error) {
		tr.done(seq, err)
		if err == nil {
			r.Stats.Acked.Add(1)
			if !commit.IsZero() {
				lag := time.Since(commit)
				r.Stats.LastCommitLag.Store(int64(lag))
				r.Metrics.Acked(table, op, lag)
			}
		}
	})
}

// commitLoop stores and acknowledges durable checkpoints every
// CommitInterval until the reader is done.
func (r *Runner) commitLoop(ctx context.Context, tr *tracker, readerDone <-chan struct{}) error {
	t := time.NewTicker(r.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-readerDone:
			return nil
		case <-t.C:
		}
		if err := tr.err(); err != nil {
			return fmt.Errorf("source %s: produce: %w", r.Name, err)
		}
		if err := r.commit(ctx, tr); err != nil {
			return err
		}
	}
}

// commit stores the newest durable checkpoint, then tells the source.
func (r *Runner) commit(ctx context.Context, tr *tracker) error {
	cp := tr.ready()
	if cp == nil {
		return nil
	}
	if err := r.Checkpoints.Save(ctx, r.Name, cp); err != nil {
		return fmt.Errorf("source %s: store checkpoint: %w", r.Name, err)
	}
	tr.saved(cp)
	r.Stats.Committed.Add(1)
	r.Metrics.Checkpointed()
	if err := r.Source.Ack(ctx, cp); err != nil {
		return fmt.Errorf("source %s: ack: %w", r.Name, err)
	}
	return nil
}
