package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugHandler serves Go's runtime profiles (net/http/pprof) under
// /debug/pprof/: heap, allocations, goroutines, CPU and execution traces
// of the running server. They are on a listener of their own, off unless
// --debug-listen is given, because a CPU profile or a trace costs the
// process while it runs and a goroutine dump shows what every goroutine
// is doing; the API's tokens do not guard them.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also heap, goroutine, allocs, block, mutex, threadcreate
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// checkDebugListen accepts only a loopback address: the profiles have no
// authentication, so reaching them from elsewhere takes a tunnel (ssh -L,
// kubectl port-forward) that has its own.
func checkDebugListen(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--debug-listen %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("--debug-listen %s: the profiling endpoints have no authentication, so they may only listen on loopback (127.0.0.1, ::1); reach them through a tunnel", addr)
}

// serveDebug serves debugHandler on ln until ctx ends. A profile may run
// for as long as its seconds parameter says, so writes get no deadline;
// shutdown waits for requests up to 10 s.
func serveDebug(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	srv := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
	})
	defer stop()
	log.Info("profiling endpoints listening", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("debug http: %w", err)
	}
	return nil
}
