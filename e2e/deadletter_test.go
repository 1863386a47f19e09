package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// deadLetters reads a dead-letter topic: the sluice.stage header of each
// record, in order.
func deadLetters(t *testing.T, addr, topic string, want int) []string {
	t.Helper()
	var stages []string
	waitFor(t, 60*time.Second, "dead letters", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		stages = nil
		for len(stages) < want && ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key == "sluice.stage" {
						stages = append(stages, string(h.Value))
					}
				}
			})
		}
		return len(stages) >= want
	})
	return stages
}

// TestDeadLettersAndReprocess sends two poison records through a pipeline:
// one its stage cannot transform, one the destination refuses (a CHECK
// constraint). Both land in the dead-letter topic with the stage that
// rejected them while every other row is applied; after the stage is
// fixed, reprocessing applies them.
func TestDeadLettersAndReprocess(t *testing.T) {
	ctx := t.Context()
	src, err := testPG.CreateDatabase(ctx, "dlq_src")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := testPG.CreateDatabase(ctx, "dlq_dst")
	if err != nil {
		t.Fatal(err)
	}
	if err := testPG.Exec(ctx, "dlq_src", `CREATE TABLE obs (id int PRIMARY KEY, value text);
		INSERT INTO obs SELECT g, g::text FROM generate_series(1, 100) g;
		INSERT INTO obs VALUES (101, 'abc'), (102, '-5');`); err != nil {
		t.Fatal(err)
	}
	if err := testPG.Exec(ctx, "dlq_dst", `CREATE TABLE obs (id int PRIMARY KEY, value text, n bigint CHECK (n >= 0))`); err != nil {
		t.Fatal(err)
	}
	pipeline := func(expr string) string {
		return `kind: Source
name: src
postgres: {dsn: "${env:SRC_DSN}", tables: [obs], heartbeat_interval: 1s}
---
kind: Pipeline
name: obs
from: {source: src}
stages:
  - set: {field: n, expr: '` + expr + `'}
sink: {postgres: {dsn: "${env:DST_DSN}"}}
`
	}
	srv, addr := newServer(t, "dlq", pipeline(`int(after.value)`),
		"SRC_DSN="+src, "DST_DSN="+dst, "SLUICE_TOKENS=admin:e2e-admin-token")
	srv.start()
	waitFor(t, 60*time.Second, "the 100 good rows", func() bool {
		return strings.HasPrefix(tableDigestBy(t, dst, "obs", "id::text", "id"), "100 rows")
	})
	stages := deadLetters(t, addr, "_sluice.dlq.dlq.obs", 2)
	sort.Strings(stages)
	if len(stages) != 2 || !strings.HasPrefix(stages[0], "sink") || !strings.HasPrefix(stages[1], "stages[0].set") {
		t.Fatalf("dead letters from stages %q, want one from the sink and one from stages[0].set", stages)
	}

	// Fix the stage, then reprocess the dead letters.
	fixed := filepath.Join(t.TempDir(), "fixed.yaml")
	if err := os.WriteFile(fixed, []byte(pipeline(`after.value.matches("^[0-9]+$") ? int(after.value) : 0`)), 0o644); err != nil {
		t.Fatal(err)
	}
	cli(t, srv, "apply", "-f", fixed)
	if out := cli(t, srv, "pipeline", "reprocess", "obs"); !strings.Contains(out, "2 applied, 0 failed again") {
		t.Fatalf("reprocess: %s", out)
	}
	want := tableDigestBy(t, src, "obs", "id::text, value, CASE WHEN value ~ '^[0-9]+$' THEN value ELSE '0' END", "id")
	waitFor(t, 60*time.Second, "every row, the reprocessed ones included", func() bool {
		return tableDigestBy(t, dst, "obs", "id::text, value, n::text", "id") == want
	})
	// Reprocessing again finds nothing new.
	if out := cli(t, srv, "pipeline", "reprocess", "obs"); !strings.Contains(out, "reprocessed 0 dead letters") {
		t.Fatalf("second reprocess: %s", out)
	}
	srv.stop()
}
