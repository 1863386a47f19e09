// Package worker runs the sources and pipelines assigned to one `sluice
// server` process. Each runs under its own supervisor: a failure is logged
// and retried with backoff from the last stored position (a source's
// checkpoint, a pipeline's offsets in its destination), and never stops the
// others.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/connectors/postgres"
	"github.com/sluice-cdc/sluice/pipelines/apply"
	"github.com/sluice-cdc/sluice/pipelines/capture"
	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/debezium"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/transforms"
)

// Worker runs sources and pipelines against one Kafka cluster.
type Worker struct {
	Instance string
	Kafka    broker.Config
	Logger   *slog.Logger

	mu            sync.Mutex
	stats         map[string]*capture.Stats
	pipelineStats map[string]*apply.Stats
}

// Stats returns the live counters of a running source (nil if unknown).
func (w *Worker) Stats(source string) *capture.Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats[source]
}

// PipelineStats returns the live counters of a running pipeline (nil if
// unknown).
func (w *Worker) PipelineStats(pipeline string) *apply.Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pipelineStats[pipeline]
}

// Run runs every source and pipeline until ctx is cancelled, then stops
// them cleanly. Every pipeline's source must be among sources (see
// spec.Pipeline.CheckReferences).
func (w *Worker) Run(ctx context.Context, sources []*spec.Source, pipelines []*spec.Pipeline) error {
	bySource := map[string]*spec.Source{}
	for _, s := range sources {
		bySource[s.Name] = s
	}
	for _, p := range pipelines {
		if err := p.CheckReferences(bySource); err != nil {
			return fmt.Errorf("pipeline %q: %w", p.Name, err)
		}
	}
	opts, err := w.Kafka.ClientOpts()
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer admin.Close()
	topics := broker.NewTopics(admin, w.Kafka.Partitions, w.Kafka.ReplicationFactor)
	topics.MaxMessageBytes = w.Kafka.RecordLimit()
	var store *broker.Store
	err = w.retry(ctx, "waiting for Kafka", func() error {
		var err error
		store, err = broker.NewStore(ctx, admin, topics, spec.ControlTopic(w.Instance, "offsets"))
		return err
	})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	w.mu.Lock()
	w.stats, w.pipelineStats = map[string]*capture.Stats{}, map[string]*apply.Stats{}
	w.mu.Unlock()
	for _, src := range sources {
		stats := &capture.Stats{}
		w.mu.Lock()
		w.stats[src.Name] = stats
		w.mu.Unlock()
		log := w.Logger.With("source", src.Name)
		g.Go(func() error {
			w.supervise(gctx, "source", log, func(ctx context.Context) error {
				return w.runSource(ctx, src, opts, topics, store, stats, log)
			})
			return nil
		})
	}
	for _, p := range pipelines {
		stats := &apply.Stats{}
		w.mu.Lock()
		w.pipelineStats[p.Name] = stats
		w.mu.Unlock()
		log := w.Logger.With("pipeline", p.Name)
		g.Go(func() error {
			w.supervise(gctx, "pipeline", log, func(ctx context.Context) error {
				return w.runPipeline(ctx, p, bySource[p.From.Source], opts, topics, stats, log)
			})
			return nil
		})
	}
	return g.Wait()
}

// supervise runs one source or pipeline until ctx ends, restarting it
// after failures.
func (w *Worker) supervise(ctx context.Context, what string, log *slog.Logger, run func(context.Context) error) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = time.Second, time.Minute
	for {
		started := time.Now()
		err := run(ctx)
		if ctx.Err() != nil {
			log.Info(what + " stopped")
			return
		}
		if time.Since(started) > 2*time.Minute {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		var perm *cdc.PermanentError
		if errors.As(err, &perm) {
			wait = max(wait, 30*time.Second)
			log.Error(what+" failed; it needs an operator's fix and is retried slowly", "err", err, "retry_in", wait)
		} else {
			log.Warn(what+" failed; restarting from its last stored position", "err", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (w *Worker) runSource(ctx context.Context, src *spec.Source, opts []kgo.Opt, topics *broker.Topics,
	store *broker.Store, stats *capture.Stats, log *slog.Logger) error {
	res, err := src.Resolved()
	if err != nil {
		return cdc.Permanent(fmt.Errorf("resolve secrets: %w", err))
	}
	tables, err := res.Postgres.TableIDs()
	if err != nil {
		return cdc.Permanent(err)
	}
	prodOpts := append(append([]kgo.Opt{}, opts...), broker.ProducerOpts(w.Kafka.RecordLimit())...)
	prod, err := kgo.NewClient(prodOpts...)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer prod.Close()
	server := spec.ServerName(w.Instance, src.Name)
	s := postgres.New(postgres.Config{
		DSN:         res.Postgres.DSN,
		Tables:      tables,
		Slot:        src.SlotName(w.Instance),
		Publication: src.PublicationName(w.Instance),
		Snapshot:    string(src.Snapshot),
		ChunkRows:   src.Postgres.SnapshotChunkRows,
		Heartbeat:   time.Duration(src.Postgres.HeartbeatInterval),
		ServerName:  server,
		Logger:      log,
	})
	r := &capture.Runner{
		Name:     src.Name,
		Source:   s,
		Producer: prod,
		Topics:   topics,
		TopicOptions: broker.TopicOptions{
			Partitions:        int32(src.Topics.Partitions),
			ReplicationFactor: int16(src.Topics.ReplicationFactor),
		},
		TopicFor:    func(t cdc.TableID) string { return spec.TopicName(w.Instance, src.Name, t) },
		Encoder:     debezium.NewJSON(),
		Checkpoints: store,
		Logger:      w.Logger,
		Stats:       stats,
		// The record limit of the topics Sluice creates.
		MaxRecordBytes: w.Kafka.RecordLimit(),
	}
	return r.Run(ctx)
}

func (w *Worker) runPipeline(ctx context.Context, p *spec.Pipeline, src *spec.Source, opts []kgo.Opt,
	topics *broker.Topics, stats *apply.Stats, log *slog.Logger) error {
	res, err := p.Resolved()
	if err != nil {
		return cdc.Permanent(fmt.Errorf("resolve secrets: %w", err))
	}
	tables, err := p.SourceTables(src)
	if err != nil {
		return cdc.Permanent(err)
	}
	chain, err := transforms.Compile(p.Stages)
	if err != nil {
		return cdc.Permanent(fmt.Errorf("compile stages: %w", err))
	}
	sink, err := postgres.NewSink(postgres.SinkConfig{
		DSN:          res.Sink.Postgres.DSN,
		Mode:         string(p.Sink.Mode),
		CreateTables: p.Sink.CreateTables,
		OffsetsTable: cdc.TableID{Schema: p.Sink.Postgres.OffsetsSchema, Name: spec.OffsetsTable(w.Instance, p.Name)},
		Logger:       log,
	})
	if err != nil {
		return cdc.Permanent(err)
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = spec.TopicName(w.Instance, src.Name, t)
	}
	r := &apply.Runner{
		Name:            p.Name,
		Topics:          names,
		ClientOpts:      opts,
		Decoder:         debezium.NewJSON(),
		Stages:          chain,
		Sink:            sink,
		BatchRows:       p.Sink.BatchRows,
		DeadLetterTopic: spec.DeadLetterTopic(w.Instance, p.Name),
		EnsureTopic: func(ctx context.Context, topic string) error {
			return topics.Ensure(ctx, topic, broker.TopicOptions{Delete: true})
		},
		Logger: log,
		Stats:  stats,
	}
	return r.Run(ctx)
}

// retry calls fn with backoff until it succeeds or ctx ends, logging why
// it waits.
func (w *Worker) retry(ctx context.Context, what string, fn func() error) error {
	bo := backoff.NewExponentialBackOff()
	bo.MaxInterval = 30 * time.Second
	for {
		err := fn()
		if err == nil {
			return nil
		}
		wait := bo.NextBackOff()
		w.Logger.Warn(what, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, errors.Join(err, ctx.Err()))
		case <-time.After(wait):
		}
	}
}
