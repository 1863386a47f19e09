package debezium

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// knownSchemas remembers the schema texts of recent messages. Every message
// of a table carries the same schema, often ten times the size of its
// payload; finding the payload of a message whose schema is known takes a
// byte comparison instead of parsing the whole message again.
//
// Decoders of one pipeline run in parallel: split reads the list without a
// lock (add and promote replace it whole), most recently used first.
type knownSchemas struct {
	mu   sync.Mutex // serialises add
	list atomic.Pointer[[][]byte]
}

const (
	maxKnownSchemas = 32
	schemaHead      = `{"schema":`
	payloadMid      = `,"payload":`
)

// split returns the schema and payload of data if data is exactly
// {"schema":S,"payload":P} with a known S. The caller still parses P, and
// must fall back to the full parse if that fails (P may then be something
// like `1,"extra":2`, from a message that is not of that shape).
func (k *knownSchemas) split(data []byte) (schema, payload []byte, ok bool) {
	if len(data) < len(schemaHead)+len(payloadMid)+2 || !bytes.HasPrefix(data, []byte(schemaHead)) || data[len(data)-1] != '}' {
		return nil, nil, false
	}
	rest := data[len(schemaHead) : len(data)-1]
	for i, s := range k.schemas() {
		if len(rest) > len(s)+len(payloadMid) && bytes.HasPrefix(rest, s) && bytes.HasPrefix(rest[len(s):], []byte(payloadMid)) {
			if i > 0 {
				k.promote(s)
			}
			payload = rest[len(s)+len(payloadMid):]
			if bytes.Equal(payload, jsonNull) {
				payload = nil
			}
			return s, payload, true
		}
	}
	return nil, nil, false
}

// add remembers schema, the schema of data as a full parse found it, when
// data has the exact shape split recognises.
func (k *knownSchemas) add(data, schema []byte) {
	if len(schema) == 0 || !bytes.HasPrefix(data, []byte(schemaHead)) {
		return
	}
	rest := data[len(schemaHead):]
	if !bytes.HasPrefix(rest, schema) || !bytes.HasPrefix(rest[len(schema):], []byte(payloadMid)) {
		return
	}
	s := bytes.Clone(schema)
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, old := range k.schemas() {
		if bytes.Equal(old, s) { // another decoder was first
			return
		}
	}
	list := append([][]byte{s}, k.schemas()...)
	if len(list) > maxKnownSchemas {
		list = list[:maxKnownSchemas]
	}
	k.list.Store(&list)
}

// promote moves s to the front, so the schemas in use stay while quiet
// ones age out. It skips the move when another decoder holds the lock: the
// next hit will do it.
func (k *knownSchemas) promote(s []byte) {
	if !k.mu.TryLock() {
		return
	}
	defer k.mu.Unlock()
	old := k.schemas()
	list := make([][]byte, 0, len(old))
	list = append(list, s)
	for _, o := range old {
		if !sameSlice(o, s) {
			list = append(list, o)
		}
	}
	k.list.Store(&list)
}

// schemas returns the known schema texts, most recently used first.
func (k *knownSchemas) schemas() [][]byte {
	if l := k.list.Load(); l != nil {
		return *l
	}
	return nil
}
