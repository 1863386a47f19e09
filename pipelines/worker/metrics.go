package worker

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/connectors/postgres"
	"github.com/sluice-cdc/sluice/observe"
	"github.com/sluice-cdc/sluice/pipelines/apply"
	"github.com/sluice-cdc/sluice/pipelines/capture"
	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/transforms"
)

// How often the worker asks Kafka whether it answers, and how often a
// source reads its replication slots' WAL statistics.
const (
	kafkaProbeInterval = 3 * time.Second
	kafkaProbeTimeout  = 2 * time.Second
	slotWatchInterval  = 10 * time.Second
)

// startObserving probes Kafka with cl until the returned function is
// called (which waits for the probe to end): a change of reachability is
// logged, and reported to w.Metrics, which also gets the units' states.
// kgo retries quietly underneath, so without the probe an outage of Kafka
// while the units run would leave no trace in the log.
func (w *Worker) startObserving(ctx context.Context, cl *kgo.Client) (stop func()) {
	if w.Metrics != nil {
		w.Metrics.WatchUnits(w.observedUnits)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(kafkaProbeInterval)
		defer t.Stop()
		reachable := true // Serve waits until it is before units start
		for {
			pctx, pcancel := context.WithTimeout(ctx, kafkaProbeTimeout)
			err := cl.Ping(pctx)
			pcancel()
			if ctx.Err() != nil {
				return
			}
			switch {
			case err != nil && reachable:
				w.Logger.Warn("Kafka is unreachable; sources and pipelines wait for it", "err", err)
			case err == nil && !reachable:
				w.Logger.Info("Kafka is reachable again")
			}
			reachable = err == nil
			if w.Metrics != nil {
				w.Metrics.Kafka(err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// observedUnits lists the units for the state and restart metrics.
func (w *Worker) observedUnits() []observe.Unit {
	st := w.Statuses()
	out := make([]observe.Unit, len(st))
	for i, s := range st {
		out[i] = observe.Unit{Kind: lower(s.Kind), Name: s.Name, State: string(s.State),
			Restarts: s.Restarts, LastError: s.LastError}
	}
	return out
}

// sourceObserver is what one run of a source reports to; its fields are
// nil without Metrics.
type sourceObserver struct {
	metrics  capture.Metrics
	snapshot func(table cdc.TableID, done, estimated int64)
	src      *observe.Source
}

func (w *Worker) observeSource(name string, tables []cdc.TableID) sourceObserver {
	if w.Metrics == nil {
		return sourceObserver{}
	}
	m := w.Metrics.Source(name, tables)
	return sourceObserver{metrics: m, snapshot: m.SnapshotProgress, src: m}
}

// watchSlots reports s's replication slot statistics until the returned
// function is called (which waits for the watcher to end).
func (o sourceObserver) watchSlots(ctx context.Context, s *postgres.Source) (stop func()) {
	if o.src == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		s.WatchSlots(ctx, slotWatchInterval, func(st postgres.SlotStats) {
			o.src.Slot(st.RetainedBytes, st.ConfirmedLagBytes)
		})
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// observePipeline returns what one run of a pipeline reports to (nil
// without Metrics) and makes chain report its stages there too.
func (w *Worker) observePipeline(name, source string, chain *transforms.Chain) apply.Metrics {
	if w.Metrics == nil {
		return nil
	}
	m := w.Metrics.Pipeline(name, source, chain.StageNames())
	chain.Observe(m)
	return m
}
