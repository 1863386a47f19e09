package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// everyTypeSchema is a table with a column of every type the event format
// reference (docs/events.md) documents.
const everyTypeSchema = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'very happy');
CREATE TABLE every_type (
	id           integer PRIMARY KEY,
	c_smallint   smallint,
	c_integer    integer,
	c_bigint     bigint,
	c_numeric    numeric,
	c_numeric_38 numeric(38,12),
	c_real       real,
	c_double     double precision,
	c_text       text,
	c_varchar    varchar(20),
	c_char       char(5),
	c_bool       boolean,
	c_date       date,
	c_time       time,
	c_timestamp  timestamp,
	c_timestamptz timestamptz,
	c_interval   interval,
	c_uuid       uuid,
	c_json       json,
	c_jsonb      jsonb,
	c_bytea      bytea,
	c_int_array  integer[],
	c_text_array text[],
	c_int_2d     integer[][],
	c_enum       mood
);`

// everyTypeRows are the rows of every_type as SQL value lists, each with a
// %d for its id. The same rows are read by the snapshot (ids as given) and
// inserted again while streaming (ids + streamedIDOffset).
var everyTypeRows = []string{
	// Ordinary values, with text that needs escaping in JSON and quoting in
	// array literals.
	`(%d, 12, 123456, 9007199254740993,
	  12345678901234567890.123456789012345678901234, 12345678901234567890123456.123456789012,
	  3.14, 2.718281828459045,
	  E'say "hi"\\ back\\slash\ttab\nnewline ünïcödé ∑ 😀', 'short', 'ab', true,
	  '2024-02-29', '23:59:59.999999', '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012+05:30',
	  '1 year 2 months 3 days 04:05:06.789012', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
	  '{"b": 1, "a": [1, 2.50, null]}', '{"b": 1, "a": [1, 2.50, null]}', '\x00ff10de7f'::bytea,
	  '{1,NULL,-3}', ARRAY['a', NULL, 'NULL', 'with "quote"', 'comma,here', E'back\\slash', '', ' spaced ', '{braces}'],
	  '{{1,2,3},{4,5,6}}', 'very happy')`,
	// Extremes and edge values.
	`(%d, -32768, -2147483648, -9223372036854775808,
	  -0.000000000000000000000000000000000000000001, -99999999999999999999999999.999999999999,
	  3.4028235e+38, '-0',
	  '', '12345678901234567890', 'abcde', false,
	  '0044-03-15 BC', '00:00:00', '1900-01-01 00:00:00', '1970-01-01 00:00:00.000001+00',
	  '-1 days +02:00:00', '00000000-0000-0000-0000-000000000000',
	  'null', '"str"', ''::bytea,
	  '{}', '{}', '{{NULL,2},{3,NULL}}', 'sad')`,
	// NaN.
	`(%d, 0, 0, 0, 'NaN', 'NaN', 'NaN', 'NaN',
	  'x', 'x', 'x', true, '1970-01-01', '12:00:00.5', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00',
	  '-0.5 seconds', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '[]', '{}', '\x00'::bytea,
	  '{0}', '{""}', '{{0}}', 'ok')`,
	// Infinity (a numeric with a typmod cannot hold it).
	`(%d, 1, 1, 1, 'Infinity', 0.000000000001, 'Infinity', 'Infinity',
	  'y', 'y', 'y', true, 'infinity', '24:00:00', 'infinity', 'infinity',
	  '178000000 years', '11111111-1111-1111-1111-111111111111', '1e400', '{"n": 1.0e2, "m": "\u00e9"}', '\xffffffff'::bytea,
	  '{2147483647}', '{"\\"}', '{{1},{2}}', 'ok')`,
	// -Infinity.
	`(%d, -1, -1, -1, '-Infinity', -0.0000000000005, '-Infinity', '-Infinity',
	  'z', 'z', 'z', false, '-infinity', '00:00:00.000001', '-infinity', '-infinity',
	  '-178000000 years -1 days -00:00:00.000001', '22222222-2222-2222-2222-222222222222', '0', '0', '\x'::bytea,
	  '{-2147483648}', '{NULL}', '{{NULL}}', 'sad')`,
	// Every non-key column NULL.
	`(%d, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
}

const streamedIDOffset = 100

func everyTypeInsert(offset int) string {
	vals := make([]string, len(everyTypeRows))
	for i, r := range everyTypeRows {
		vals[i] = fmt.Sprintf(r, i+1+offset)
	}
	return "INSERT INTO every_type VALUES\n" + strings.Join(vals, ",\n") + ";"
}

// rawEnvelope is a Debezium value as it is on Kafka, split only as far as
// the test needs; every part stays in its original bytes and order.
type rawEnvelope struct {
	Schema  json.RawMessage `json:"schema"`
	Payload struct {
		Before      json.RawMessage `json:"before"`
		After       json.RawMessage `json:"after"`
		Source      json.RawMessage `json:"source"`
		Op          string          `json:"op"`
		TsMs        json.RawMessage `json:"ts_ms"`
		Transaction json.RawMessage `json:"transaction"`
	} `json:"payload"`
}

type rawSource struct {
	TsMs     int64  `json:"ts_ms"`
	TsUs     int64  `json:"ts_us"`
	TsNs     *int64 `json:"ts_ns"`
	Snapshot string `json:"snapshot"`
	LSN      *int64 `json:"lsn"`
	TxID     *int64 `json:"txId"`
}

type rawTransaction struct {
	ID         string `json:"id"`
	TotalOrder int64  `json:"total_order"`
	DCOrder    int64  `json:"data_collection_order"`
}

// rawTopic reads the first n records of a topic as they are on Kafka.
func rawTopic(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: got %d records before the deadline, want %d", topic, len(out), n)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Logf("fetch %s/%d: %v", tp, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

var (
	volatileSource = regexp.MustCompile(`"(ts_ms|ts_us|ts_ns|lsn|txId)":-?[0-9]+`)
	dbField        = regexp.MustCompile(`"db":"[^"]*"`)
	leadingID      = regexp.MustCompile(`^\{"id":[0-9]+,`)
)

// normSource replaces the source block's volatile values, keeping its
// field order.
func normSource(b []byte) string {
	s := volatileSource.ReplaceAllString(string(b), `"$1":0`)
	return dbField.ReplaceAllString(s, `"db":"<db>"`)
}

func indentJSON(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatalf("indent %s: %v", b, err)
	}
	return buf.String()
}

// fieldSchema returns the schema of the named top-level field of a value
// schema, in its original bytes.
func fieldSchema(t *testing.T, schema json.RawMessage, field string) json.RawMessage {
	t.Helper()
	var s struct {
		Fields []json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatalf("value schema: %v", err)
	}
	for _, f := range s.Fields {
		var name struct {
			Field string `json:"field"`
			Name  string `json:"name"`
		}
		if err := json.Unmarshal(f, &name); err != nil {
			t.Fatal(err)
		}
		// The source block's schema is found by its name: the codec does
		// not write "field":"source" for it.
		if name.Field == field {
			return f
		}
	}
	t.Fatalf("value schema has no field %q", field)
	return nil
}

// TestEnvelopeGoldenEveryType checks type fidelity on the real path:
// PostgreSQL -> Source -> capture runtime -> Kafka, as Debezium JSON. A table
// with a column of every supported type is snapshotted (op r) and the same
// rows are inserted again while streaming (op c, ids + 100). The raw Kafka
// values are compared with testdata/envelope_every_type.golden (go test
// -run TestEnvelopeGoldenEveryType -update rewrites it), and each streamed
// after-image must be byte-for-byte the snapshot's apart from the id: the
// snapshot's text format and pgoutput's must decode identically.
func TestEnvelopeGoldenEveryType(t *testing.T) {
	dsn, db := newDB(t, everyTypeSchema+everyTypeInsert(0))
	emb := startBroker(t, t.TempDir(), "127.0.0.1:0")
	defer emb.Close()
	run := startCapture(t, emb.Addr(), testConfig(dsn, "every_type"))
	exec(t, db, everyTypeInsert(streamedIDOffset))

	n := len(everyTypeRows)
	recs := rawTopic(t, emb.Addr(), topicPrefix+"public.every_type", 2*n)
	if len(recs) != 2*n {
		t.Fatalf("%d records on Kafka, want %d", len(recs), 2*n)
	}
	if err := run.stop(t); err != nil {
		t.Fatalf("clean stop: %v", err)
	}

	envs := make([]rawEnvelope, len(recs))
	var g strings.Builder
	g.WriteString("# TestEnvelopeGoldenEveryType: the records of public.every_type on Kafka, in offset order.\n")
	g.WriteString("# Rows 1-6 come from the snapshot (op r); rows 101-106 are the same rows inserted while streaming (op c).\n")
	g.WriteString("# Normalized: payload.ts_ms and source ts_ms, ts_us, ts_ns, lsn, txId are 0; source.db is <db>;\n")
	g.WriteString("# transaction.id is <xid>:<lsn>. Everything else is verbatim.\n")
	for i, kr := range recs {
		e := &envs[i]
		if kr.Value == nil {
			t.Fatalf("record %d is a tombstone", i)
		}
		if err := json.Unmarshal(kr.Value, e); err != nil {
			t.Fatalf("record %d: %v\n%s", i, err, kr.Value)
		}
		p := &e.Payload
		wantOp, wantID := "r", i+1
		if i >= n {
			wantOp, wantID = "c", i-n+1+streamedIDOffset
		}
		if p.Op != wantOp {
			t.Fatalf("record %d: op %q, want %q", i, p.Op, wantOp)
		}
		if wantKey := fmt.Sprintf(`"payload":{"id":%d}}`, wantID); !bytes.HasSuffix(kr.Key, []byte(wantKey)) {
			t.Fatalf("record %d: key %s, want payload {\"id\":%d}", i, kr.Key, wantID)
		}
		if !bytes.HasPrefix(p.After, fmt.Appendf(nil, `{"id":%d,`, wantID)) {
			t.Fatalf("record %d: after %s, want id %d first", i, p.After, wantID)
		}
		if string(p.Before) != "null" {
			t.Fatalf("record %d: before = %s, want null", i, p.Before)
		}

		// The volatile fields must be present and sane before they are
		// normalized away.
		var src rawSource
		if err := json.Unmarshal(p.Source, &src); err != nil {
			t.Fatalf("record %d: source: %v", i, err)
		}
		if src.TsMs <= 0 || src.TsUs/1000 != src.TsMs || src.TsNs == nil || *src.TsNs/1000 != src.TsUs {
			t.Errorf("record %d: source ts_ms/ts_us/ts_ns disagree: %s", i, p.Source)
		}
		if src.LSN == nil || *src.LSN <= 0 {
			t.Errorf("record %d: source.lsn missing: %s", i, p.Source)
		}
		txID := ""
		if p.Op == "r" {
			if src.TxID != nil || string(p.Transaction) != "null" {
				t.Errorf("snapshot record %d: txId %v, transaction %s; want none", i, src.TxID, p.Transaction)
			}
		} else {
			var tx rawTransaction
			if err := json.Unmarshal(p.Transaction, &tx); err != nil {
				t.Fatalf("record %d: transaction: %v", i, err)
			}
			if src.TxID == nil || !strings.HasPrefix(tx.ID, fmt.Sprintf("%d:", *src.TxID)) {
				t.Errorf("record %d: transaction.id %q does not start with source.txId %v", i, tx.ID, src.TxID)
			}
			if tx.TotalOrder != int64(i-n+1) || tx.DCOrder != tx.TotalOrder {
				t.Errorf("record %d: transaction orders %d/%d, want %d", i, tx.TotalOrder, tx.DCOrder, i-n+1)
			}
			txID = fmt.Sprintf(`{"id":"<xid>:<lsn>","total_order":%d,"data_collection_order":%d}`, tx.TotalOrder, tx.DCOrder)
		}
		if txID == "" {
			txID = "null"
		}
		var ts int64
		if err := json.Unmarshal(p.TsMs, &ts); err != nil || ts < src.TsMs {
			t.Errorf("record %d: envelope ts_ms %s before the commit time %d", i, p.TsMs, src.TsMs)
		}

		if i == 0 {
			fmt.Fprintf(&g, "\n== key of id 1 (schema and payload)\n%s\n", indentJSON(t, kr.Key))
			fmt.Fprintf(&g, "\n== value schema of the snapshot records\n%s\n", indentJSON(t, e.Schema))
		}
		if i == n {
			fmt.Fprintf(&g, "\n== source schema of the streamed records (the rest equals the snapshot's)\n%s\n",
				indentJSON(t, fieldSchema(t, e.Schema, "source")))
		}
		fmt.Fprintf(&g, "\n== offset %d: op %s, id %d\nafter: %s\nbefore: %s\nsource: %s\nop: %q ts_ms: 0\ntransaction: %s\n",
			i, p.Op, wantID, p.After, p.Before, normSource(p.Source), p.Op, txID)
	}

	// The snapshot and the stream describe the table identically...
	for _, f := range []string{"before", "after"} {
		if a, b := fieldSchema(t, envs[0].Schema, f), fieldSchema(t, envs[n].Schema, f); !bytes.Equal(a, b) {
			t.Errorf("%s schema differs between snapshot and stream:\nsnapshot: %s\nstream:   %s", f, a, b)
		}
	}
	if !bytes.Equal(recs[0].Key[:bytes.Index(recs[0].Key, []byte(`"payload"`))],
		recs[n].Key[:bytes.Index(recs[n].Key, []byte(`"payload"`))]) {
		t.Errorf("key schema differs between snapshot and stream:\nsnapshot: %s\nstream:   %s", recs[0].Key, recs[n].Key)
	}
	// ...and decode every value identically: the after-images are equal
	// byte for byte apart from the id.
	for i := range n {
		snap := leadingID.ReplaceAll(envs[i].Payload.After, []byte("{"))
		stream := leadingID.ReplaceAll(envs[n+i].Payload.After, []byte("{"))
		if !bytes.Equal(snap, stream) {
			t.Errorf("row %d: streamed after-image differs from the snapshot's (ids aside):\nsnapshot: %s\nstream:   %s",
				i+1, envs[i].Payload.After, envs[n+i].Payload.After)
		}
	}

	golden := filepath.Join("testdata", "envelope_every_type.golden")
	got := g.String()
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestEnvelopeGoldenEveryType -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var a, b string
			if i < len(gl) {
				a = gl[i]
			}
			if i < len(wl) {
				b = wl[i]
			}
			if a != b {
				t.Fatalf("envelope differs from %s at line %d (go test -update rewrites it):\ngot:  %s\nwant: %s", golden, i+1, a, b)
			}
		}
	}
}
