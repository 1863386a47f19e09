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
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/connectors/postgres"
	"github.com/sluice-cdc/sluice/observe"
	"github.com/sluice-cdc/sluice/pipelines/apply"
	"github.com/sluice-cdc/sluice/pipelines/capture"
	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/debezium"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/transforms"
)

// Worker runs sources and pipelines against one Kafka cluster. Set tells it
// what should run; Serve runs that until its context ends, starting,
// stopping and restarting units as Set changes it.
type Worker struct {
	Instance string
	Kafka    broker.Config
	Logger   *slog.Logger
	// Metrics, when set, receives the metrics and readiness of Kafka and
	// of every source and pipeline.
	Metrics *observe.Metrics

	mu            sync.Mutex
	stats         map[string]*capture.Stats
	pipelineStats map[string]*apply.Stats
	desired       []Unit
	changed       chan struct{} // signalled by Set
	units         map[unitKey]*running
	env           *runEnv // set once Kafka is reachable

	// runSourceFunc, when set, runs a source unit instead of runSource
	// (tests of the reconciler), with the request the source would get.
	runSourceFunc func(ctx context.Context, u Unit, resnap *Resnapshot) error
}

// Stats returns the live counters of a source (nil if unknown).
func (w *Worker) Stats(source string) *capture.Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats[source]
}

// PipelineStats returns the live counters of a pipeline (nil if unknown).
func (w *Worker) PipelineStats(pipeline string) *apply.Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pipelineStats[pipeline]
}

// Run runs every source and pipeline until ctx is cancelled, then stops
// them cleanly: Set followed by Serve. Every pipeline's source must be
// among sources (see spec.Pipeline.CheckReferences).
func (w *Worker) Run(ctx context.Context, sources []*spec.Source, pipelines []*spec.Pipeline) error {
	bySource := map[string]*spec.Source{}
	for _, s := range sources {
		bySource[s.Name] = s
	}
	var units []Unit
	for _, s := range sources {
		units = append(units, Unit{Kind: spec.KindSource, Name: s.Name, Desired: StateRunning, Source: s})
	}
	for _, p := range pipelines {
		if err := p.CheckReferences(bySource); err != nil {
			return fmt.Errorf("pipeline %q: %w", p.Name, err)
		}
		units = append(units, Unit{Kind: spec.KindPipeline, Name: p.Name, Desired: StateRunning,
			Pipeline: p, Source: bySource[p.From.Source]})
	}
	w.Set(units)
	return w.Serve(ctx)
}

// Serve connects to Kafka (waiting for it with backoff) and runs the units
// of the latest Set until ctx ends, then stops them all.
func (w *Worker) Serve(ctx context.Context) error {
	opts, err := w.Kafka.ClientOpts()
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer admin.Close()
	defer w.startObserving(ctx, admin)()
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
	env := &runEnv{opts: opts, topics: topics, store: store}
	w.mu.Lock()
	w.env = env
	w.mu.Unlock()
	defer w.stopAll()
	for {
		w.reconcile(ctx, env)
		select {
		case <-ctx.Done():
			return nil
		case <-w.signal():
		}
	}
}

// supervise runs one source or pipeline until ctx ends, restarting it
// after failures.
func (w *Worker) supervise(ctx context.Context, r *running, run func(context.Context) error) {
	log := r.log
	what := strings.ToLower(string(r.unit.Kind))
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = time.Second, time.Minute
	for {
		started := time.Now()
		r.setState(StateRunning, nil)
		err := run(ctx)
		if ctx.Err() != nil {
			log.Info(what + " stopped")
			return
		}
		if err == nil {
			err = errors.New("stopped by itself")
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
		r.setState(StateFailed, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		r.restarted()
	}
}

// runSource captures a source; resnap is its latest resnapshot request
// (nil: none), and onResnap is told how it progresses.
func (w *Worker) runSource(ctx context.Context, src *spec.Source, resnap *Resnapshot, onResnap func(int64, bool),
	env *runEnv, stats *capture.Stats, log *slog.Logger) error {
	opts, topics, store := env.opts, env.topics, env.store
	res, err := src.Resolved()
	if err != nil {
		return cdc.Permanent(fmt.Errorf("resolve secrets: %w", err))
	}
	tables, err := res.Postgres.TableIDs()
	if err != nil {
		return cdc.Permanent(err)
	}
	var req *postgres.ResnapshotRequest
	if resnap != nil {
		req = &postgres.ResnapshotRequest{ID: resnap.ID, Nonce: resnap.Nonce}
		for i, t := range resnap.Tables {
			id, err := cdc.ParseTableID(t, spec.DefaultSchema)
			if err != nil {
				return cdc.Permanent(fmt.Errorf("resnapshot %d: tables[%d]: %w", resnap.ID, i, err))
			}
			req.Tables = append(req.Tables, id)
		}
	}
	prodOpts := append(append([]kgo.Opt{}, opts...), w.Kafka.ProducerOpts()...)
	prod, err := kgo.NewClient(prodOpts...)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer prod.Close()
	server := spec.ServerName(w.Instance, src.Name)
	obs := w.observeSource(src.Name, tables)
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

		SnapshotProgress: obs.snapshot,
		Resnapshot:       req,
		OnResnapshot:     onResnap,
	})
	defer obs.watchSlots(ctx, s)()
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
		Metrics:        obs.metrics,
	}
	return r.Run(ctx)
}

func (w *Worker) runPipeline(ctx context.Context, p *spec.Pipeline, src *spec.Source, env *runEnv,
	stats *apply.Stats, log *slog.Logger) error {
	r, err := w.pipelineRunner(p, src, env, stats, log)
	if err != nil {
		return err
	}
	r.Metrics = w.observePipeline(p.Name, src.Name, r.Stages.(*transforms.Chain))
	return r.Run(ctx)
}

// pipelineRunner builds the apply runner of a pipeline.
func (w *Worker) pipelineRunner(p *spec.Pipeline, src *spec.Source, env *runEnv,
	stats *apply.Stats, log *slog.Logger) (*apply.Runner, error) {
	res, err := p.Resolved()
	if err != nil {
		return nil, cdc.Permanent(fmt.Errorf("resolve secrets: %w", err))
	}
	tables, err := p.SourceTables(src)
	if err != nil {
		return nil, cdc.Permanent(err)
	}
	chain, err := transforms.Compile(p.Stages)
	if err != nil {
		return nil, cdc.Permanent(fmt.Errorf("compile stages: %w", err))
	}
	sink, err := NewSink(w.Instance, res, log)
	if err != nil {
		return nil, cdc.Permanent(err)
	}
	return &apply.Runner{
		Name:            p.Name,
		Topics:          PipelineTopics(w.Instance, src.Name, tables),
		ClientOpts:      env.opts,
		Decoder:         debezium.NewJSON(),
		Stages:          chain,
		Sink:            sink,
		BatchRows:       p.Sink.BatchRows,
		DeadLetterTopic: spec.DeadLetterTopic(w.Instance, p.Name),
		StopOnError:     p.Errors == spec.ErrorsStop,
		EnsureTopic: func(ctx context.Context, topic string) error {
			return env.topics.Ensure(ctx, topic, broker.TopicOptions{Delete: true})
		},
		Logger: log,
		Stats:  stats,
	}, nil
}

// ReprocessDeadLetters runs a pipeline's dead letters through its current
// stages and sink (see apply.Runner.Reprocess). The pipeline should not be
// running meanwhile.
func (w *Worker) ReprocessDeadLetters(ctx context.Context, p *spec.Pipeline, src *spec.Source) (taken, failedAgain int64, err error) {
	w.mu.Lock()
	env := w.env
	w.mu.Unlock()
	if env == nil {
		return 0, 0, errors.New("not connected to Kafka yet")
	}
	log := w.Logger.With("pipeline", p.Name, "reprocess", true)
	r, err := w.pipelineRunner(p, src, env, &apply.Stats{}, log)
	if err != nil {
		return 0, 0, err
	}
	return r.Reprocess(ctx)
}

// NewSink returns the sink of a pipeline whose secrets are resolved (see
// spec.Pipeline.Resolved).
func NewSink(instance string, p *spec.Pipeline, log *slog.Logger) (*postgres.Sink, error) {
	if p.Sink.Postgres == nil {
		return nil, fmt.Errorf("pipeline %q: no sink", p.Name)
	}
	return postgres.NewSink(postgres.SinkConfig{
		DSN:          p.Sink.Postgres.DSN,
		Mode:         string(p.Sink.Mode),
		CreateTables: p.Sink.CreateTables,
		OffsetsTable: cdc.TableID{Schema: p.Sink.Postgres.OffsetsSchema, Name: spec.OffsetsTable(instance, p.Name)},
		Logger:       log,
	})
}

// PipelineTopics returns the topics a pipeline reading tables of source
// consumes.
func PipelineTopics(instance, source string, tables []cdc.TableID) []string {
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = spec.TopicName(instance, source, t)
	}
	return names
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
