package debezium

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestKnownSchemaFastPath decodes messages whose schema the codec has seen
// (the byte-comparison path) and odd messages that only look like them,
// and checks both give what a full parse gives.
func TestKnownSchemaFastPath(t *testing.T) {
	const schema = `{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":true,"name":"s.t.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"}],"optional":false,"field":"source"},{"type":"string","optional":false,"field":"op"}],"optional":false,"name":"s.t.Envelope"}`
	msg := func(payload string) []byte { return []byte(`{"schema":` + schema + `,"payload":` + payload + `}`) }
	key := []byte(`{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":"s.t.Key"},"payload":{"id":1}}`)
	first := msg(`{"after":{"id":1},"source":{"schema":"public","table":"t"},"op":"c"}`)
	j := NewJSON()
	want, err := NewJSON().Decode(key, first)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // the first parse is full, the next ones take the fast path
		got, err := j.Decode(key, first)
		if err != nil {
			t.Fatalf("decode %d: %v", i, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("decode %d differs (-full +got):\n%s", i, d)
		}
	}
	// Value and key schemas are kept apart, so that decoding a message
	// reorders neither list.
	if nv, nk := len(j.known.schemas()), len(j.knownKeys.schemas()); nv != 1 || nk != 1 {
		t.Errorf("known schemas: %d values and %d keys, want 1 and 1", nv, nk)
	}
	// A message with a third member after the payload is not the
	// Connect shape: it is a bare payload, as a full parse says.
	odd := []byte(string(msg(`{"after":{"id":1},"source":{"schema":"public","table":"t"},"op":"c"}`)[:len(first)-1]) + `,"x":1}`)
	_, errFull := NewJSON().Decode(key, odd)
	_, errFast := j.Decode(key, odd)
	if (errFull == nil) != (errFast == nil) {
		t.Errorf("odd message: full parse error %v, fast path error %v", errFull, errFast)
	}
	// A tombstone with a known schema.
	if _, err := j.Decode(key, msg("null")); err != ErrTombstone {
		t.Errorf("null payload: %v, want ErrTombstone", err)
	}
}

// TestKnownSchemasKeepThoseInUse: a schema in use stays known however many
// others come and go.
func TestKnownSchemasKeepThoseInUse(t *testing.T) {
	var k knownSchemas
	msg := func(s string) []byte { return []byte(`{"schema":` + s + `,"payload":{}}`) }
	hot := `{"hot":1}`
	k.add(msg(hot), []byte(hot))
	for i := range 3 * maxKnownSchemas {
		s := fmt.Sprintf(`{"quiet":%d}`, i)
		k.add(msg(s), []byte(s))
		if _, _, ok := k.split(msg(hot)); !ok {
			t.Fatalf("the schema in use was forgotten after %d others", i+1)
		}
	}
	if n := len(k.schemas()); n != maxKnownSchemas {
		t.Errorf("%d known schemas, want %d", n, maxKnownSchemas)
	}
}
