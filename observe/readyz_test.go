package observe_test

import (
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/broker"
)

// TestReadyzFollowsKafka runs a source and a pipeline against a broker
// the test stops and starts again: /readyz says not ready, naming Kafka,
// while it is down, ready again once it is back, and changes made
// meanwhile reach the destination. Nothing exits.
func TestReadyzFollowsKafka(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "kafka")
	emb, err := broker.StartEmbedded(dir, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := emb.Addr()
	stop := func() {
		if emb != nil {
			emb.Close()
			emb = nil
		}
	}
	// Registered before the worker's cleanup, so it runs after: a worker
	// stopping without Kafka waits for its records in flight.
	t.Cleanup(stop)

	r := startSluice(t, "obs_readyz", addr)
	r.waitReady(t, http.StatusOK, 40*time.Second, "ready")
	waitRows(t, r, "id <= 500", 500)

	stop()
	r.waitReady(t, http.StatusServiceUnavailable, 20*time.Second, "kafka: ")
	if code, _ := r.get(t, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d while Kafka is down, want 200: the process is alive", code)
	}
	if err := testPG.Exec(t.Context(), r.name+"_src", "INSERT INTO items VALUES (5000, 'while kafka was down', 'n')"); err != nil {
		t.Fatal(err)
	}

	// The same address and data directory: a broker that came back.
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
	} else {
		t.Fatalf("the broker's port %s was taken meanwhile: %v", addr, err)
	}
	emb, err = broker.StartEmbedded(dir, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.waitReady(t, http.StatusOK, 40*time.Second, "ready")
	waitRows(t, r, "id = 5000", 1)
}

// waitRows waits until the destination holds want rows matching where.
func waitRows(t *testing.T, r *running, where string, want int) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		n := r.count(t, where)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination has %d rows with %s, want %d", n, where, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
