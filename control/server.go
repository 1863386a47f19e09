// Package control is Sluice's control plane (DESIGN.md section 6): the REST
// API under /v1 that creates, replaces, starts, stops, pauses, resumes,
// restarts, clears and replays sources and pipelines, and the reconciler
// that turns the desired state kept in Kafka into running units on the
// worker.
//
// Specs, their versions and desired states live in the compacted control
// topic _sluice.<instance>.configs (see Store), so a restarted server runs
// again what ran before. Secrets in specs stay ${env:...}/${file:...}
// references everywhere: in Kafka, in API responses and in logs; only the
// worker resolves them, just before connecting.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
	"github.com/sluice-cdc/sluice/transforms"
)

// Runtime runs units: the worker.
type Runtime interface {
	Set(units []worker.Unit)
	Statuses() []worker.Status
	Status(kind spec.Kind, name string) (worker.Status, bool)
	// ReprocessDeadLetters runs a stopped pipeline's dead letters through
	// its current stages and sink.
	ReprocessDeadLetters(ctx context.Context, p *spec.Pipeline, src *spec.Source) (taken, failedAgain int64, err error)
}

// Server is the control plane of one instance.
type Server struct {
	Instance string
	Store    *Store
	Runtime  Runtime
	// Kafka finds offsets by timestamp for replays.
	Kafka  *kgo.Client
	Tokens Tokens
	Logger *slog.Logger
	// StatusKV, when set, receives every unit's status when it changes
	// (the control topic _sluice.<instance>.status), for other servers and
	// tools.
	StatusKV KV

	published   map[string]string // status key -> last JSON saved
	mu          sync.Mutex
	generations map[key]int // restart actions
	actionMu    sync.Mutex  // one clear/replay at a time
}

// Reconcile gives the runtime the units the store describes.
func (s *Server) Reconcile() {
	sources := map[string]*spec.Source{}
	sourceVersions := map[string]int{}
	var units []worker.Unit
	s.mu.Lock()
	gens := map[key]int{}
	for k, g := range s.generations {
		gens[k] = g
	}
	s.mu.Unlock()
	for _, h := range s.Store.List(spec.KindSource) {
		src, err := s.source(h.Name)
		if err != nil {
			s.Logger.Error("stored source spec is unreadable; not running it", "source", h.Name, "err", err)
			continue
		}
		sources[h.Name], sourceVersions[h.Name] = src, h.Version
		units = append(units, worker.Unit{Kind: spec.KindSource, Name: h.Name, Version: h.Version,
			Desired: h.Desired, Source: src, Generation: gens[key{spec.KindSource, h.Name}], Resnapshot: h.Resnapshot})
	}
	for _, h := range s.Store.List(spec.KindPipeline) {
		p, err := s.pipeline(h.Name)
		if err != nil {
			s.Logger.Error("stored pipeline spec is unreadable; not running it", "pipeline", h.Name, "err", err)
			continue
		}
		units = append(units, worker.Unit{Kind: spec.KindPipeline, Name: h.Name, Version: h.Version,
			Desired: h.Desired, Pipeline: p, Source: sources[p.From.Source],
			SourceVersion: sourceVersions[p.From.Source], Generation: gens[key{spec.KindPipeline, h.Name}]})
	}
	s.Runtime.Set(units)
}

// Run reloads the store every interval (to see changes made through
// another server) and reconciles, until ctx ends.
func (s *Server) Run(ctx context.Context, interval time.Duration) {
	s.Reconcile()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.publishStatus(ctx)
		s.recordResnapshots(ctx)
		if err := s.Store.Reload(ctx); err != nil {
			if ctx.Err() == nil {
				s.Logger.Warn("reloading control state failed", "err", err)
			}
			continue
		}
		s.Reconcile()
	}
}

// publishStatus saves the statuses that changed since the last call.
func (s *Server) publishStatus(ctx context.Context) {
	if s.StatusKV == nil {
		return
	}
	if s.published == nil {
		s.published = map[string]string{}
	}
	for _, st := range s.Runtime.Statuses() {
		b, err := json.Marshal(st)
		if err != nil {
			continue
		}
		k := string(st.Kind) + "/" + st.Name
		if s.published[k] == string(b) {
			continue
		}
		if err := s.StatusKV.Save(ctx, k, b); err != nil {
			if ctx.Err() == nil {
				s.Logger.Warn("publishing status failed", "err", err)
			}
			return
		}
		s.published[k] = string(b)
	}
}

func (s *Server) source(name string) (*spec.Source, error) {
	_, v, ok := s.Store.Get(spec.KindSource, name)
	if !ok {
		return nil, ErrNotFound
	}
	sp, err := parseVersion(v)
	if err != nil {
		return nil, err
	}
	src, ok := sp.(*spec.Source)
	if !ok {
		return nil, fmt.Errorf("stored spec is a %s", sp.Kind())
	}
	return src, nil
}

func (s *Server) pipeline(name string) (*spec.Pipeline, error) {
	_, v, ok := s.Store.Get(spec.KindPipeline, name)
	if !ok {
		return nil, ErrNotFound
	}
	sp, err := parseVersion(v)
	if err != nil {
		return nil, err
	}
	p, ok := sp.(*spec.Pipeline)
	if !ok {
		return nil, fmt.Errorf("stored spec is a %s", sp.Kind())
	}
	return p, nil
}

// ApplySpecs stores specs read from files at start-up, as if PUT through
// the API: unchanged specs keep their version.
func (s *Server) ApplySpecs(ctx context.Context, docs []Document) error {
	for _, d := range docs {
		if _, _, err := s.Store.Put(ctx, d.Spec.Kind(), d.Spec.Ident(), d.Format, d.Text); err != nil {
			return fmt.Errorf("%s %q: %w", d.Spec.Kind(), d.Spec.Ident(), err)
		}
	}
	return nil
}

// Document is one spec with the text it was parsed from.
type Document struct {
	Spec   spec.Spec
	Format string // yaml or json
	Text   string
}

// restart bumps the generation of a unit so the runtime restarts it.
func (s *Server) restart(kind spec.Kind, name string) {
	s.mu.Lock()
	if s.generations == nil {
		s.generations = map[key]int{}
	}
	s.generations[key{kind, name}]++
	s.mu.Unlock()
	s.Reconcile()
}

// waitState waits until a unit is no longer running (after a stop).
func (s *Server) waitStopped(ctx context.Context, kind spec.Kind, name string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, ok := s.Runtime.Status(kind, name)
		if !ok || (st.State != worker.StateRunning && st.State != worker.StateFailed) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %q did not stop within 60s", kind, name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// destinationTables derives the destination tables a pipeline writes, by
// running a record of each source table through its stages.
func destinationTables(p *spec.Pipeline, src *spec.Source) ([]cdc.TableID, error) {
	chain, err := transforms.Compile(p.Stages)
	if err != nil {
		return nil, err
	}
	tables, err := p.SourceTables(src)
	if err != nil {
		return nil, err
	}
	seen := map[cdc.TableID]bool{}
	var out []cdc.TableID
	for _, t := range tables {
		recs, err := chain.Apply(context.Background(), cdc.Record{Table: t, Op: cdc.OpRead, After: cdc.Row{}, Key: cdc.Row{}})
		if err != nil {
			return nil, fmt.Errorf("cannot tell the destination table of %s: %w; name the tables", t, err)
		}
		for _, r := range recs {
			if !seen[r.Table] {
				seen[r.Table] = true
				out = append(out, r.Table)
			}
		}
	}
	return out, nil
}

// offsetsAt returns, for every partition of topics, the offset of the first
// record at or after t (the end of the partition if there is none).
func (s *Server) offsetsAt(ctx context.Context, topics []string, t time.Time) (cdc.Offsets, error) {
	adm := kadm.NewClient(s.Kafka)
	listed, err := adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topics...)
	if err != nil {
		return nil, fmt.Errorf("offsets at %s: %w", t.Format(time.RFC3339), err)
	}
	if err := listed.Error(); err != nil {
		return nil, fmt.Errorf("offsets at %s: %w", t.Format(time.RFC3339), err)
	}
	out := cdc.Offsets{}
	listed.Each(func(o kadm.ListedOffset) {
		out[cdc.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	return out, nil
}

var errConflict = errors.New("conflict")
