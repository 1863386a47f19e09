package spec

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseJSON(t *testing.T) {
	in := `{"kind": "Source", "name": "elmis",
 "postgres": {"dsn": "${env:ELMIS_DSN}", "tables": ["public.requisitions", "facilities"]}}
{"kind": "Source", "name": "x", "postgres": {"dsn": "p\/w\ud83d\ude00", "tables": ["t"],
  "heartbeat_interval": "2s", "snapshot_chunk_rows": 20}, "topics": {"partitions": 2}}`
	specs, err := Parse([]byte(in), "specs.json")
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := Parse([]byte(goodSource), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(specs[0], fromYAML[0]) {
		t.Errorf("JSON %+v != YAML %+v", specs[0], fromYAML[0])
	}
	x := specs[1].(*Source)
	if x.Postgres.DSN != "p/w😀" || x.Postgres.HeartbeatInterval != Duration(2*time.Second) ||
		x.Postgres.SnapshotChunkRows != 20 || x.Topics.Partitions != 2 {
		t.Errorf("got %+v %+v", x, x.Postgres)
	}

	tests := []struct{ in, want string }{
		{"{\"kind\": \"Source\", \"name\": \"a\",\n \"postgres\": {\"dsn\": \"x\", \"tables\": [\"t\"],\n \"slot\": 5, \"bogus\": null}}",
			`doc[0] Source "a" (s.json:3): postgres.bogus: unknown field`},
		{"{\"kind\": \"Source\", \"name\": \"a\", \"topics\": {\"partitions\": 1.0}, \"postgres\": {\"dsn\": \"x\", \"tables\": [\"t\"]}}",
			`doc[0] Source "a" (s.json:1): topics.partitions: want an integer, got a number`},
		{"{\"kind\": \"Source\",\n \"name\": }", `doc[0] (s.json): json: line 2: invalid character '}' looking for beginning of value`},
		{"{\"kind\": \"Source\"", `doc[0] (s.json): json: line 1: unexpected EOF`},
		{"[]", `doc[0] (s.json:1): want a mapping with a kind field, got a list`},
		{strings.Repeat("[", 200), `doc[0] (s.json): json: line 1: nested deeper than 100`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in), "s.json")
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s:\ngot  %v\nwant %s", tt.in, err, tt.want)
		}
	}
}

func TestParseFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("b.json", `{"kind": "Pipeline", "name": "p", "from": {"source": "elmis"}, "sink": {"postgres": {"dsn": "x"}}}`)
	write("a.yaml", goodSource)
	write("c.yml", strings.ReplaceAll(goodSource, "elmis", "other"))
	write("notes.txt", "not a spec")
	write(".#a.yaml", "editor lock file")
	write("sub/d.yaml", "kind: Source\n")
	single := write("single/one.yaml", strings.ReplaceAll(goodSource, "elmis", "one"))

	specs, err := ParseFiles(dir, single)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range specs {
		got = append(got, string(s.Kind())+"/"+s.Ident())
	}
	if want := []string{"Source/elmis", "Pipeline/p", "Source/other", "Source/one"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}

	// Every problem of every file, duplicates across files included.
	dup := write("dup/x.yaml", goodSource)
	_, err = ParseFiles(dir, dup, filepath.Join(dir, "missing.yaml"), filepath.Join(dir, "sub"))
	wants := []string{
		`reading spec: stat ` + filepath.Join(dir, "missing.yaml") + `: no such file or directory`,
		`doc[0] Source (` + filepath.Join(dir, "sub", "d.yaml") + `:1): name: required`,
		`doc[0] Source "elmis" (` + dup + `:1): name: duplicate Source name (first in doc[0] of ` + filepath.Join(dir, "a.yaml") + `)`,
	}
	for _, w := range wants {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\ndoes not contain %s", err, w)
		}
	}

	empty := t.TempDir()
	if _, err := ParseFiles(empty); err == nil || !strings.Contains(err.Error(), "no *.yaml, *.yml or *.json files") {
		t.Errorf("empty directory: %v", err)
	}
}
