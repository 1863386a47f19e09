// Package e2e tests the sluice binary as an operator runs it: built from
// source, pointed at throwaway databases, killed with SIGKILL at random
// moments, and read back with Kafka clients, including one we did not write
// (kcat).
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/internal/throwaway"
)

var (
	sluiceBin string
	testPG    *throwaway.Postgres
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, "../cmd/sluice")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build sluice: %v\n%s", err, out)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	testPG, err = throwaway.StartPostgres(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e tests need a PostgreSQL server:", err)
		return 1
	}
	defer testPG.Stop(context.Background())
	return m.Run()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// server is one `sluice server` process; kill and start it at will.
type server struct {
	t       *testing.T
	args    []string
	env     []string
	logPath string
	listen  string // the API's address
	cmd     *exec.Cmd
}

// newServer prepares a server running specYAML; instance must be unique per
// test, since replication slots are shared by the whole PostgreSQL server.
func newServer(t *testing.T, instance, specYAML string, env ...string) (*server, string) {
	t.Helper()
	dir := t.TempDir()
	specPath := filepath.Join(dir, "specs.yaml")
	if err := os.WriteFile(specPath, []byte(specYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	s := &server{t: t, env: env, logPath: filepath.Join(dir, "sluice.log"), listen: freeAddr(t)}
	s.args = []string{"server", "--instance", instance, "--data-dir", filepath.Join(dir, "data"), "--kafka-listen", addr, "--listen", s.listen, "-f", specPath}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			if b, err := os.ReadFile(s.logPath); err == nil {
				lines := strings.Split(string(b), "\n")
				t.Logf("last lines of the sluice log:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
	return s, addr
}

func (s *server) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(sluiceBin, s.args...)
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
}

// kill sends SIGKILL and reaps the process.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Errorf("sluice server exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		s.t.Error("sluice server did not stop within 30s of SIGTERM")
		_ = s.cmd.Process.Kill()
	}
	s.cmd = nil
}

// event is one record of a table topic, read with a plain JSON decoder the
// way any Debezium consumer would.
type event struct {
	key    string
	op     string // "" for a tombstone
	after  map[string]any
	lsn    int64 // source.lsn
	offset int64
}

// readTopic reads a topic from the start to its current end.
func readTopic(t *testing.T, addr, topic string) []event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil
	}
	end := int64(0)
	ends.Each(func(o kadm.ListedOffset) { end = max(end, o.Offset) })
	if end <= 0 {
		return nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []event
	for {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %d records before the deadline, want up to offset %d", topic, len(out), end)
		}
		last := int64(-1)
		fs.EachRecord(func(r *kgo.Record) {
			last = r.Offset
			var k struct {
				Payload map[string]any `json:"payload"`
			}
			if err := json.Unmarshal(r.Key, &k); err != nil {
				t.Fatalf("key at %d is not JSON: %v", r.Offset, err)
			}
			ev := event{key: fmt.Sprint(k.Payload["id"]), offset: r.Offset}
			if f, ok := k.Payload["id"].(float64); ok { // not 1e+06
				ev.key = strconv.FormatFloat(f, 'f', -1, 64)
			}
			if r.Value != nil {
				var v struct {
					Payload struct {
						Op     string         `json:"op"`
						After  map[string]any `json:"after"`
						Source struct {
							LSN int64 `json:"lsn"`
						} `json:"source"`
					} `json:"payload"`
				}
				if err := json.Unmarshal(r.Value, &v); err != nil {
					t.Fatalf("value at %d is not JSON: %v", r.Offset, err)
				}
				ev.op, ev.after, ev.lsn = v.Payload.Op, v.Payload.After, v.Payload.Source.LSN
			}
			out = append(out, ev)
		})
		if last+1 >= end {
			return out
		}
	}
}

// waitStreaming waits until the slot of instance/source is active, i.e. the
// snapshot is done and changes are streamed.
func waitStreaming(t *testing.T, dsn, slot string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	waitFor(t, 60*time.Second, "slot "+slot+" to stream", func() bool {
		var active bool
		err := conn.QueryRow(t.Context(), "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active)
		return err == nil && active
	})
}

// loadUntilDone runs step in a transaction of its own, pausing between
// transactions, until ctx ends: the live load of the tests that kill or
// disturb Sluice while the source changes. A failure before ctx ended is
// returned.
func loadUntilDone(ctx context.Context, pool *pgxpool.Pool, pause time.Duration, step func(tx pgx.Tx) error) error {
	for ctx.Err() == nil {
		if err := pgx.BeginFunc(ctx, pool, step); err != nil && ctx.Err() == nil {
			return fmt.Errorf("load: %w", err)
		}
		time.Sleep(pause)
	}
	return nil
}
