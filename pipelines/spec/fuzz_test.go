package spec

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"
)

// FuzzParse checks that Parse never panics, that every spec it accepts
// validates cleanly, and that an accepted Source survives a JSON round
// trip unchanged. (Not a YAML one: yaml.v3's encoder does not round-trip
// some strings, such as one starting with a newline.)
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodSource), false)
	f.Add([]byte(goodSource+"---\nkind: Pipeline\nname: p\nfrom: {source: elmis, tables: [a]}\nstages: [{x: 1}]\n"), false)
	f.Add([]byte("kind: Pipeline\nname: p\nfrom: {source: s}\nstages: [{rename: {table: a.b, fields: {x: y}}}, {drop: [z]}]\nsink: {postgres: {dsn: x}, mode: history}\n"), false)
	f.Add([]byte("kind: Pipeline\nname: p\nfrom: {source: s}\nsink: {postgres: {dsn: x}}\nstages:\n  - set: {field: a, expr: '1', type: int32}\n  - map_values: {field: s, values: {a: null, b: c}}\n  - split: [{stages: [{unwrap: {delete: rewrite, add: [op]}}]}, {}]\n  - hash: {fields: [a], salt: '${env:S}'}\n  - flatten: {field: j, columns: {a: b.0}}\n"), false)
	f.Add([]byte(`{"kind": "Pipeline", "name": "p", "from": {"source": "s"}, "sink": {"postgres": {"dsn": "x"}}, "stages": [{"split": [{"stages": [{"cast": {"fields": {"a": "uuid[]"}}}]}]}, {"mask": {"fields": ["a"], "keep_last": 2}}]}`), true)
	f.Add([]byte("kind: Source\nname: a\npostgres:\n  <<: &d {dsn: x, tables: [t]}\n  slot: s\ntopics: {partitions: 3}\n"), false)
	f.Add([]byte("kind: Source\nname: a\npostgres: {dsn: '${file:/x}', tables: [t], heartbeat_interval: 1h}\n"), false)
	f.Add([]byte("a: &a [*a]\n"), false)
	f.Add([]byte(`{"kind": "Source", "name": "a", "postgres": {"dsn": "x\u0000", "tables": ["s.t"]}}`), true)
	f.Add([]byte(`{"kind": "Pipeline", "name": "p", "from": {"source": "a"}, "sink": [1, {"a": null}]}`), true)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		name := "fuzz.yaml"
		if isJSON {
			name = "fuzz.json"
		}
		specs, err := Parse(data, name)
		if err != nil {
			_ = err.Error()
			return
		}
		for _, s := range specs {
			if err := s.Validate(); err != nil {
				t.Fatalf("accepted spec fails validation: %v", err)
			}
			if p, ok := s.(*Pipeline); ok {
				c := *p
				c.Tests = yaml.Node{} // not part of the JSON form
				s = &c
			}
			out, err := json.Marshal(s)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			out = append([]byte(`{"kind": "`+string(s.Kind())+`", `), out[1:]...)
			again, err := Parse(out, "again.json")
			if err != nil {
				t.Fatalf("re-parse of\n%s\nfailed: %v", out, err)
			}
			// omitempty turns an empty list into a missing one.
			if d := cmp.Diff(s, again[0], cmpopts.EquateEmpty()); d != "" {
				t.Fatalf("round trip changed the spec (-before +after):\n%s", d)
			}
		}
	})
}
