package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestKcatReadsEmbeddedBroker captures a table with the binary's embedded
// broker and reads the topic with kcat (librdkafka), a Kafka client we did
// not write: metadata, every message, keys and Debezium envelopes.
func TestKcatReadsEmbeddedBroker(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: run `make deps` (Debian package kcat)")
	}
	ctx := t.Context()
	dsn, err := testPG.CreateDatabase(ctx, "kcattest")
	if err != nil {
		t.Fatal(err)
	}
	if err := testPG.Exec(ctx, "kcattest", `CREATE TABLE t (id int PRIMARY KEY, v text, n numeric(12,3));
		INSERT INTO t SELECT g, 'row ' || g, g / 8.0 FROM generate_series(1, 100) g;`); err != nil {
		t.Fatal(err)
	}
	srv, addr := newServer(t, "kcat", `kind: Source
name: src
postgres: {dsn: "${env:SRC_DSN}", tables: [t]}
`, "SRC_DSN="+dsn)
	srv.start()
	waitStreaming(t, dsn, "sluice_kcat_src")
	if err := testPG.Exec(ctx, "kcattest", `UPDATE t SET v = 'changed' WHERE id <= 10; DELETE FROM t WHERE id = 100;`); err != nil {
		t.Fatal(err)
	}
	topic := "kcat.src.public.t"
	// 100 reads, 10 updates, 1 delete and its tombstone.
	waitFor(t, 60*time.Second, "112 records on the topic", func() bool { return len(readTopic(t, addr, topic)) >= 112 })

	meta, err := exec.CommandContext(ctx, kcat, "-b", addr, "-L", "-J").Output()
	if err != nil {
		t.Fatalf("kcat -L: %v", err)
	}
	var md struct {
		Topics []struct {
			Topic string `json:"topic"`
		} `json:"topics"`
	}
	if err := json.Unmarshal(meta, &md); err != nil {
		t.Fatalf("kcat -L -J output: %v\n%s", err, meta)
	}
	found := false
	for _, tp := range md.Topics {
		found = found || tp.Topic == topic
	}
	if !found {
		t.Fatalf("kcat metadata does not list %s: %s", topic, meta)
	}

	out, err := exec.CommandContext(ctx, kcat, "-b", addr, "-C", "-t", topic, "-e", "-q", "-f", "%k\t%S\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat -C: %v", err)
	}
	ops := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "\t", 3)
		if len(parts) != 3 {
			t.Fatalf("kcat line %q", sc.Text())
		}
		var key map[string]any
		if err := json.Unmarshal([]byte(parts[0]), &key); err != nil {
			t.Fatalf("key %q is not JSON: %v", parts[0], err)
		}
		if parts[1] == "-1" { // kcat prints a null value's size as -1
			ops["tombstone"]++
			continue
		}
		var v struct {
			Payload struct {
				Op     string         `json:"op"`
				After  map[string]any `json:"after"`
				Source map[string]any `json:"source"`
			} `json:"payload"`
		}
		if err := json.Unmarshal([]byte(parts[2]), &v); err != nil {
			t.Fatalf("value is not JSON: %v: %s", err, parts[2])
		}
		ops[v.Payload.Op]++
		if v.Payload.Op == "r" && v.Payload.After["id"] == float64(8) && v.Payload.After["n"] != "1.000" {
			t.Errorf("numeric 8/8.0 as read by kcat = %v, want the exact string 1.000", v.Payload.After["n"])
		}
		if v.Payload.Source["connector"] != "postgresql" || v.Payload.Source["table"] != "t" {
			t.Errorf("source block %v", v.Payload.Source)
		}
	}
	want := map[string]int{"r": 100, "u": 10, "d": 1, "tombstone": 1}
	for k, n := range want {
		if ops[k] != n {
			t.Errorf("kcat read %d %q records, want %d (all: %v)", ops[k], k, n, ops)
		}
	}
	srv.stop()
}
