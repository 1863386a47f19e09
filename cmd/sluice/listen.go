package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/control"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
)

// serverRun is what `sluice server` runs once its flags are checked.
type serverRun struct {
	instance          string
	kafka             broker.Config
	log               *slog.Logger
	docs              []control.Document // specs from -f, applied at start
	tokens            control.Tokens
	listen            string
	certFile, keyFile string
	debugListen       string // profiling endpoints (debug.go); "" for none
}

// runServer serves the HTTP listener at once (the API answers 503 until
// Kafka is reachable), then connects to Kafka with backoff, loads the
// control state, applies the spec files and runs the worker and the
// reconciler until ctx ends.
func runServer(ctx context.Context, r serverRun) error {
	mux := http.NewServeMux()
	metrics := mountObserve(ctx, mux)
	w := &worker.Worker{Instance: r.instance, Kafka: r.kafka, Logger: r.log, Metrics: metrics}
	var api atomic.Pointer[http.Handler]
	mux.Handle("/v1/", http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if h := api.Load(); h != nil {
			(*h).ServeHTTP(rw, req)
			return
		}
		rw.Header().Set("Content-Type", "application/problem+json")
		rw.Header().Set("Retry-After", "2")
		rw.WriteHeader(http.StatusServiceUnavailable)
		_, _ = rw.Write([]byte(`{"type":"about:blank","title":"starting","status":503,"detail":"waiting for Kafka"}` + "\n"))
	}))
	ln, err := net.Listen("tcp", r.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	var debugLn net.Listener
	if r.debugListen != "" {
		if debugLn, err = net.Listen("tcp", r.debugListen); err != nil {
			_ = ln.Close()
			return fmt.Errorf("--debug-listen: %w", err)
		}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelWarn)}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if r.certFile != "" {
			err = srv.ServeTLS(ln, r.certFile, r.keyFile)
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http: %w", err)
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	if debugLn != nil {
		g.Go(func() error { return serveDebug(gctx, debugLn, r.log) })
	}
	g.Go(func() error { return w.Serve(gctx) })
	g.Go(func() error {
		ctl, err := startControl(gctx, r, w)
		if err != nil {
			if gctx.Err() != nil {
				return nil
			}
			return err
		}
		h := ctl.Handler()
		api.Store(&h)
		metrics.Health().Set(componentControl, nil)
		r.log.Info("control plane ready", "listen", r.listen, "auth", !r.tokens.Empty())
		ctl.Run(gctx, 10*time.Second)
		return nil
	})
	return g.Wait()
}

// startControl connects to Kafka (waiting for it), opens the control
// state and applies the spec files.
func startControl(ctx context.Context, r serverRun, w *worker.Worker) (*control.Server, error) {
	opts, err := r.kafka.ClientOpts()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	context.AfterFunc(ctx, cl.Close)
	topics := broker.NewTopics(cl, r.kafka.Partitions, r.kafka.ReplicationFactor)
	var store *control.Store
	bo := backoff.NewExponentialBackOff()
	bo.MaxInterval = 30 * time.Second
	for {
		kv, err := broker.NewStore(ctx, cl, topics, spec.ControlTopic(r.instance, spec.ControlConfigs))
		if err == nil {
			store, err = control.OpenStore(ctx, kv)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		wait := bo.NextBackOff()
		r.log.Warn("control plane waiting for Kafka", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	ctl := &control.Server{Instance: r.instance, Store: store, Runtime: w, Kafka: cl, Tokens: r.tokens, Logger: r.log}
	if statusKV, err := broker.NewStore(ctx, cl, topics, spec.ControlTopic(r.instance, spec.ControlStatus)); err == nil {
		ctl.StatusKV = statusKV
	} else {
		r.log.Warn("statuses will not be published to Kafka", "err", err)
	}
	if err := ctl.ApplySpecs(ctx, r.docs); err != nil {
		return nil, fmt.Errorf("apply spec files: %w", err)
	}
	if len(r.docs) > 0 {
		// Spec files add and replace; they do not delete. Say so when
		// the control topic holds more than the files.
		inFiles := map[string]bool{}
		for _, d := range r.docs {
			inFiles[string(d.Spec.Kind())+"/"+d.Spec.Ident()] = true
		}
		for _, kind := range []spec.Kind{spec.KindSource, spec.KindPipeline} {
			for _, h := range store.List(kind) {
				if !inFiles[string(kind)+"/"+h.Name] {
					r.log.Warn("runs from the control topic although not in the spec files; delete it with `sluice delete` if it should not",
						strings.ToLower(string(kind)), h.Name, "desired_state", h.Desired)
				}
			}
		}
	}
	return ctl, nil
}

// loadTokens reads API tokens from file, or else from env SLUICE_TOKENS.
func loadTokens(file string) (control.Tokens, error) {
	text := os.Getenv("SLUICE_TOKENS")
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return control.Tokens{}, fmt.Errorf("--tokens-file: %w", err)
		}
		text = string(b)
	}
	t, err := control.ParseTokens(text)
	if err != nil {
		return control.Tokens{}, fmt.Errorf("API tokens: %w", err)
	}
	return t, nil
}

// checkListen refuses an open API (no tokens) on anything but loopback.
func checkListen(addr string, tokens control.Tokens) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if !tokens.Empty() {
		return nil
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--listen %s: without API tokens (--tokens-file or SLUICE_TOKENS) the API is open to anyone, so it may only listen on loopback (127.0.0.1, ::1)", addr)
}

func sourceSpecs(ss []*spec.Source) []spec.Spec {
	out := make([]spec.Spec, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func pipelineSpecs(ps []*spec.Pipeline) []spec.Spec {
	out := make([]spec.Spec, len(ps))
	for i, p := range ps {
		out[i] = p
	}
	return out
}
