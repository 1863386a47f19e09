// Package worker runs the sources (and, later, pipelines) assigned to one
// `sluice server` process. Each runs under its own supervisor: a failure is
// logged and retried with backoff from the last stored checkpoint, and never
// stops the others.
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
	"github.com/sluice-cdc/sluice/pipelines/capture"
	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/debezium"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// Worker runs sources against one Kafka cluster.
type Worker struct {
	Instance string
	Kafka    broker.Config
	Logger   *slog.Logger

	mu    sync.Mutex
	stats map[string]*capture.Stats
}

// Stats returns the live counters of a running source (nil if unknown).
func (w *Worker) Stats(source string) *capture.Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats[source]
}

// Run runs every source until ctx is cancelled, then stops them cleanly.
func (w *Worker) Run(ctx context.Context, sources []*spec.Source) error {
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
	for _, src := range sources {
		g.Go(func() error {
			w.supervise(gctx, src, opts, topics, store)
			return nil
		})
	}
	return g.Wait()
}

// supervise runs one source until ctx ends, restarting it after failures.
func (w *Worker) supervise(ctx context.Context, src *spec.Source, opts []kgo.Opt, topics *broker.Topics, store *broker.Store) {
	log := w.Logger.With("source", src.Name)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = time.Second, time.Minute
	stats := &capture.Stats{}
	w.mu.Lock()
	if w.stats == nil {
		w.stats = map[string]*capture.Stats{}
	}
	w.stats[src.Name] = stats
	w.mu.Unlock()
	for {
		started := time.Now()
		err := w.runSource(ctx, src, opts, topics, store, stats, log)
		if ctx.Err() != nil {
			log.Info("source stopped")
			return
		}
		if time.Since(started) > 2*time.Minute {
			bo.Reset()
		}
		wait := bo.NextBackOff()
		var perm *cdc.PermanentError
		if errors.As(err, &perm) {
			wait = max(wait, 30*time.Second)
			log.Error("source failed; it needs an operator's fix and is retried slowly", "err", err, "retry_in", wait)
		} else {
			log.Warn("source failed; restarting from its last checkpoint", "err", err, "retry_in", wait)
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
