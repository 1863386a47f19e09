package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestCheckDebugListen(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:6060", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{"127.0.0.1:0", true},
		{":6060", false}, // every interface
		{"0.0.0.0:6060", false},
		{"10.0.0.5:6060", false},
		{"sluice.example.org:6060", false},
		{"6060", false},
	} {
		err := checkDebugListen(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("checkDebugListen(%q) = %v, want ok %v", tc.addr, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--debug-listen") {
			t.Errorf("checkDebugListen(%q) = %v: does not name the flag", tc.addr, err)
		}
	}
}

// TestServerRejectsOpenDebugListen checks that the server refuses to
// start, before it starts anything, when the profiles would be reachable
// from other hosts.
func TestServerRejectsOpenDebugListen(t *testing.T) {
	cmd := newServerCmd(&logFlags{format: "text", level: "error"})
	cmd.SetArgs([]string{"--debug-listen", "0.0.0.0:6060", "--data-dir", t.TempDir(), "--kafka-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "--debug-listen 0.0.0.0:6060: the profiling endpoints have no authentication") {
		t.Fatalf("server with --debug-listen 0.0.0.0:6060: %v", err)
	}
}

// TestServeDebug fetches profiles from the debug listener and checks that
// it stops, and frees its port, when its context ends.
func TestServeDebug(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serveDebug(ctx, ln, slog.New(slog.DiscardHandler)) }()

	for _, tc := range []struct{ path, want string }{
		{"/debug/pprof/", "Types of profiles available"},
		{"/debug/pprof/heap?debug=1", "heap profile:"},
		{"/debug/pprof/goroutine?debug=1", "serveDebug"}, // the serving goroutine itself
		{"/debug/pprof/cmdline", os.Args[0]},
	} {
		resp, err := http.Get("http://" + addr + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s: %s, body without %q:\n%.300s", tc.path, resp.Status, tc.want, body)
		}
	}
	resp, err := http.Get("http://" + addr + "/v1/pipelines")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/pipelines on the debug listener: %s, want 404 (the API is not served there)", resp.Status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveDebug after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serveDebug did not return after its context ended")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after shutdown", addr)
	}
}
