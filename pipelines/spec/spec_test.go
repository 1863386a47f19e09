package spec

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const goodSource = `kind: Source
name: elmis
postgres:
  dsn: ${env:ELMIS_DSN}
  tables: [public.requisitions, facilities]
`

func TestParseSourceDefaults(t *testing.T) {
	specs, err := Parse([]byte(goodSource), "elmis.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Source{
		Name: "elmis",
		Postgres: &Postgres{
			DSN:               "${env:ELMIS_DSN}",
			Tables:            []string{"public.requisitions", "facilities"},
			HeartbeatInterval: Duration(10 * time.Second),
			SnapshotChunkRows: 10000,
		},
		Snapshot: SnapshotInitial,
		Topics:   Topics{Partitions: 1, ReplicationFactor: -1},
		Format:   FormatJSON,
	}
	if len(specs) != 1 || !reflect.DeepEqual(specs[0], want) {
		t.Fatalf("got %#v\nwant %#v", specs, want)
	}
}

func TestParseSourceAllFields(t *testing.T) {
	in := `kind: Source
name: elmis-2
postgres:
  dsn: "host=db user=sluice password=${file:/run/secrets/pw}"
  tables: [requisitions]
  slot: my_slot
  publication: my_pub
  heartbeat_interval: 1m30s
  snapshot_chunk_rows: 1000000
snapshot: when_needed
topics: {partitions: 12, replication_factor: 3}
format: json
`
	specs, err := Parse([]byte(in), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := specs[0].(*Source)
	pg := s.Postgres
	if pg.Slot != "my_slot" || pg.Publication != "my_pub" || pg.HeartbeatInterval != Duration(90*time.Second) ||
		pg.SnapshotChunkRows != 1000000 || s.Snapshot != SnapshotWhenNeeded || s.Topics != (Topics{12, 3}) {
		t.Fatalf("got %+v %+v", s, pg)
	}
	if s.SlotName("prod") != "my_slot" || s.PublicationName("prod") != "my_pub" || s.Connector() != "postgres" {
		t.Fatal("overrides not used")
	}
	ids, err := pg.TableIDs()
	if err != nil || len(ids) != 1 || ids[0].String() != "public.requisitions" {
		t.Fatalf("TableIDs = %v, %v", ids, err)
	}
}

// TestParseErrors checks the exact message, path and line of each kind of
// problem. Every input is one document.
func TestParseErrors(t *testing.T) {
	src := func(extra string) string { return goodSource + extra }
	tests := []struct {
		name, in string
		want     []string
	}{
		{"unknown top field", src("bogus_field: 1\n"),
			[]string{`doc[0] Source "elmis" (f.yaml:6): bogus_field: unknown field`}},
		{"unknown nested field", strings.Replace(goodSource, "  dsn:", "  dns: x\n  dsn:", 1),
			[]string{`doc[0] Source "elmis" (f.yaml:4): postgres.dns: unknown field`}},
		{"odd unknown key", src("\"a b\": 1\n"),
			[]string{`doc[0] Source "elmis" (f.yaml:6): ["a b"]: unknown field`}},
		{"duplicate field", src("name: other\n"),
			[]string{`doc[0] Source "elmis" (f.yaml:6): name: duplicate field (first on line 2)`}},
		{"tables not a list", "kind: Source\nname: a\npostgres:\n  dsn: x\n  tables: public.t\n",
			[]string{`doc[0] Source "a" (f.yaml:5): postgres.tables: want a list of strings, got a string`}},
		{"table not a string", "kind: Source\nname: a\npostgres:\n  dsn: x\n  tables: [t, {a: b}]\n",
			[]string{`doc[0] Source "a" (f.yaml:5): postgres.tables[1]: want a string, got a mapping`}},
		{"bad table", "kind: Source\nname: a\npostgres:\n  dsn: x\n  tables: [t, a.b.c, ' t', '${env:T}']\n", []string{
			`doc[0] Source "a" (f.yaml:5): postgres.tables[1]: table "a.b.c": want schema.table`,
			`doc[0] Source "a" (f.yaml:5): postgres.tables[2]: want schema.table or table, without quotes, spaces around it or secret references`,
			`doc[0] Source "a" (f.yaml:5): postgres.tables[3]: want schema.table or table, without quotes, spaces around it or secret references`,
		}},
		{"duplicate table", "kind: Source\nname: a\npostgres:\n  dsn: x\n  tables:\n  - t\n  - public.t\n",
			[]string{`doc[0] Source "a" (f.yaml:7): postgres.tables[1]: duplicate of postgres.tables[0] (public.t)`}},
		{"missing required", "kind: Source\nname: a\npostgres: {}\n", []string{
			`doc[0] Source "a" (f.yaml:3): postgres.dsn: required`,
			`doc[0] Source "a" (f.yaml:3): postgres.tables: required: at least one table`,
		}},
		{"null connector block", "kind: Source\nname: a\npostgres:\n", []string{
			`doc[0] Source "a" (f.yaml:3): postgres.dsn: required`,
			`doc[0] Source "a" (f.yaml:3): postgres.tables: required: at least one table`,
		}},
		{"no connector", "kind: Source\nname: a\n",
			[]string{`doc[0] Source "a" (f.yaml:1): source needs exactly one of: postgres`}},
		{"bad name", strings.Replace(goodSource, "elmis", "Elmis.x", 1),
			[]string{`doc[0] Source "Elmis.x" (f.yaml:2): name: must match [a-z0-9][a-z0-9_-]{0,62}: it becomes part of slot and topic names`}},
		{"missing name", "kind: Source\npostgres: {dsn: x, tables: [t]}\n",
			[]string{`doc[0] Source (f.yaml:1): name: required`}},
		{"bad values", src(`snapshot: always
topics:
  partitions: 0
  replication_factor: 0
format: avro
`), []string{
			`doc[0] Source "elmis" (f.yaml:6): snapshot: want one of initial, never, when_needed`,
			`doc[0] Source "elmis" (f.yaml:8): topics.partitions: must be 1 to 1000`,
			`doc[0] Source "elmis" (f.yaml:9): topics.replication_factor: must be -1 (broker default) or 1 to 10`,
			`doc[0] Source "elmis" (f.yaml:10): format: want json`,
		}},
		{"bad postgres values", `kind: Source
name: a
postgres:
  dsn: postgres://u:${env:}@h/db
  tables: [t]
  slot: My-Slot
  publication: "x${env:P}"
  heartbeat_interval: 500ms
  snapshot_chunk_rows: 0
`, []string{
			`doc[0] Source "a" (f.yaml:4): postgres.dsn: secret reference at offset 13: ${env:...}: bad variable name`,
			`doc[0] Source "a" (f.yaml:6): postgres.slot: must be 1 to 63 of a-z, 0-9 and _`,
			`doc[0] Source "a" (f.yaml:7): postgres.publication: must be 1 to 63 of a-z, 0-9 and _`,
			`doc[0] Source "a" (f.yaml:8): postgres.heartbeat_interval: must be at least 1s`,
			`doc[0] Source "a" (f.yaml:9): postgres.snapshot_chunk_rows: must be 1 to 1000000`,
		}},
		{"wrong scalar types", "kind: Source\nname: [a]\npostgres:\n  dsn: x\n  tables: [t]\n  heartbeat_interval: 10\n  snapshot_chunk_rows: 1.5\ntopics: {partitions: '3'}\n", []string{
			`doc[0] Source (f.yaml:2): name: want a string, got a list`,
			`doc[0] Source (f.yaml:6): postgres.heartbeat_interval: want a duration such as 10s, got an integer`,
			`doc[0] Source (f.yaml:7): postgres.snapshot_chunk_rows: want an integer, got a number`,
			`doc[0] Source (f.yaml:8): topics.partitions: want an integer, got a string`,
		}},
		{"explicit null keeps default", src("snapshot: ~\ntopics:\n"), nil},
		{"not a mapping", "- a\n- b\n",
			[]string{`doc[0] (f.yaml:1): want a mapping with a kind field, got a list`}},
		{"no kind", "name: a\n", []string{`doc[0] (f.yaml:1): kind: required (one of Source, Pipeline)`}},
		{"unknown kind", "kind: Sink\nname: a\n",
			[]string{`doc[0] (f.yaml:1): kind: unknown kind "Sink" (want Source or Pipeline)`}},
		{"pipeline", "kind: Pipeline\nname: p\nfrom: {tables: [a, public.a]}\nstages: {a: 1}\nbogus: 1\n", []string{
			`doc[0] Pipeline "p" (f.yaml:1): sink: a sink needs exactly one of: postgres`,
			`doc[0] Pipeline "p" (f.yaml:3): from.source: required`,
			`doc[0] Pipeline "p" (f.yaml:3): from.tables[1]: duplicate of from.tables[0] (public.a)`,
			`doc[0] Pipeline "p" (f.yaml:4): stages: want a list, got a mapping`,
			`doc[0] Pipeline "p" (f.yaml:5): bogus: unknown field`,
		}},
		// yaml.v3 gives the line of some syntax errors one too low.
		{"syntax error", "kind: Source\nname: [a\n",
			[]string{`doc[0] (f.yaml): yaml: line 1: did not find expected ',' or ']'`}},
		{"unquoted reference inside a flow mapping value", "kind: Source\nname: a\npostgres: {dsn: a${env:X}, tables: [t]}\n",
			[]string{`doc[0] (f.yaml): yaml: line 2: did not find expected ',' or '}' (hint: a ${...} reference inside {...} or [...] must be quoted: "${env:X}")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := Parse([]byte(tt.in), "f.yaml")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, got %+v", specs)
			}
			if specs != nil {
				t.Errorf("specs returned with an error: %v", specs)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestFieldErrors(t *testing.T) {
	_, err := Parse([]byte("kind: Source\nname: a\npostgres: {tables: [t, 1, t]}\n"), "body.json.yaml")
	fes := FieldErrors(err)
	var got []string
	for _, fe := range fes {
		got = append(got, fe.Path)
	}
	if want := []string{"postgres.dsn", "postgres.tables[2]"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("paths = %v, want %v", got, want)
	}
	var de *DocumentError
	if !errors.As(err, &de) || de.Line != 3 || de.Kind != KindSource || de.Name != "a" || de.File != "body.json.yaml" {
		t.Fatalf("DocumentError = %+v", de)
	}
}

func TestParseMultiDoc(t *testing.T) {
	in := "# sources and pipelines\n" + goodSource + `---
---
# only a comment
---
kind: Pipeline
name: requisitions-to-v3
from: {source: elmis, tables: [public.requisitions]}
stages:
  - rename: {table: requisition.requisitions}
  - drop: [draft_note]
sink:
  postgres: {dsn: "${env:V3_DSN}"}
tests:
  - name: t
    expect: []
`
	specs, err := Parse([]byte(in), "all.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 || specs[0].Kind() != KindSource || specs[1].Kind() != KindPipeline {
		t.Fatalf("got %v", specs)
	}
	p := specs[1].(*Pipeline)
	if p.Ident() != "requisitions-to-v3" || p.From.Source != "elmis" || len(p.Stages) != 2 ||
		p.Sink.Postgres == nil || p.Sink.Mode != SinkUpsert || p.Sink.BatchRows != DefaultBatchRows || p.Tests.Kind == 0 {
		t.Fatalf("pipeline = %+v", p)
	}
	// Lines count from the start of the file, across documents; the
	// index counts empty documents too.
	_, err = Parse([]byte(in+"---\nkind: Pipeline\nname: requisitions-to-v3\nfrom: {source: Elmis}\nsink: {postgres: {dsn: x}}\n"), "all.yaml")
	want := `doc[4] Pipeline "requisitions-to-v3" (all.yaml:25): from.source: not a source name: must match [a-z0-9][a-z0-9_-]{0,62}: it becomes part of slot and topic names`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestParseDuplicateNames(t *testing.T) {
	_, err := Parse([]byte(goodSource+"---\n"+goodSource), "f.yaml")
	want := `doc[1] Source "elmis" (f.yaml:7): name: duplicate Source name (first in doc[0] of f.yaml)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	// A source and a pipeline may share a name.
	if _, err := Parse([]byte(goodSource+"---\nkind: Pipeline\nname: elmis\nfrom: {source: elmis}\nsink: {postgres: {dsn: x}}\n"), "f.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestParseMergeKeys(t *testing.T) {
	in := `kind: Source
name: a
postgres:
  <<: &pg {dsn: x, tables: [t], snapshot_chunk_rows: 5}
  snapshot_chunk_rows: 7
`
	specs, err := Parse([]byte(in), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if pg := specs[0].(*Source).Postgres; pg.DSN != "x" || pg.SnapshotChunkRows != 7 {
		t.Fatalf("got %+v", pg)
	}
	_, err = Parse([]byte("kind: Source\nname: a\npostgres:\n  <<: {dsn: x, tables: [t], bogus: 1}\n"), "f.yaml")
	if err == nil || !strings.Contains(err.Error(), "postgres.bogus: unknown field") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateBuiltInGo(t *testing.T) {
	s := &Source{Name: "a", Postgres: &Postgres{DSN: "x", Tables: []string{"t"}}}
	if err := s.Validate(); err == nil {
		t.Fatal("zero values passed validation")
	}
	s.SetDefaults()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Nested merges of aliases grow exponentially; the decoder stops early.
func TestParseMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("kind: Source\nname: a\n")
	b.WriteString("x0: &a0 {dsn: x}\n")
	for i := 1; i < 12; i++ {
		p := fmt.Sprintf("*a%d", i-1)
		fmt.Fprintf(&b, "x%d: &a%d {<<: [%s]}\n", i, i, strings.Repeat(p+", ", 7)+p)
	}
	b.WriteString("postgres: *a11\n")
	_, err := Parse([]byte(b.String()), "f.yaml")
	var merges int
	for _, fe := range FieldErrors(err) {
		if fe.Path == "postgres" && fe.Msg == "merge keys expand to more than 10000 fields" {
			merges++
		}
	}
	if merges != 1 {
		t.Fatalf("want one merge error, got:\n%v", err)
	}
}
