// Package debezium encodes change records as Debezium-compatible JSON, the
// default wire format of Sluice's topics, and decodes them back.
//
// The value is Debezium's envelope (before, after, source, op, ts_ms,
// transaction) and the key is a struct of the key columns. With schemas
// enabled (the default) both are wrapped the way Kafka Connect's
// JsonConverter wraps them, {"schema": ..., "payload": ...}, so Debezium
// consumers read our topics unchanged. Values follow the Debezium PostgreSQL
// connector with decimal.handling.mode=string,
// time.precision.mode=adaptive_time_microseconds (timestamps always as
// MicroTimestamp), interval.handling.mode=string and
// binary.handling.mode=bytes.
//
// Where Debezium has no answer or JSON no way to say something, this codec
// chooses, and Decode reverses the choice exactly:
//
//   - float NaN and ±Inf are the JSON strings "NaN", "Infinity", "-Infinity"
//     (a strict Connect JsonConverter rejects them: it has no such numbers);
//   - infinite dates and timestamps use reserved values, see dateInfinity;
//   - a column absent from a row (cdc.Row has no entry for it, e.g. an
//     unchanged TOASTed value) is left out of the JSON object, while NULL is
//     written as null; Decode keeps the difference;
//   - timetz is the source's own text (io.debezium.time.ZonedTime by name
//     only; Debezium would normalise it to UTC);
//   - multi-dimensional arrays are nested JSON arrays under a schema whose
//     items are the element type (Connect cannot describe them);
//   - text that is not valid UTF-8 is an error, not replaced;
//   - field schemas carry __sluice.* parameters (kind, element kind, exact
//     enum labels) beside Debezium's __debezium.source.column.* ones, so that
//     Decode restores the exact cdc.Column;
//   - the source block carries ts_us and ts_ns (as Debezium 2.x does) so the
//     commit time survives at full precision.
package debezium

import (
	"sync/atomic"

	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Version is the value of the source block's "version" field.
const Version = "0.1.0-sluice"

// ErrTombstone is returned by Decode for a null value: the tombstone that
// follows a delete carries no change of its own.
var ErrTombstone = errors.New("debezium: tombstone (null value)")

// JSON is the Debezium JSON codec. It is safe for concurrent use.
//
// It caches what it derives from a *cdc.TableSchema (field schemas, column
// order) by pointer: a TableSchema must not be modified once a record
// carrying it has been encoded. A changed table gets a new TableSchema.
type JSON struct {
	schemas   bool
	clock     func() time.Time
	tables    boundedCache[tableKey, *tableCodec]
	decoded   boundedCache[uint64, *schemaEntry] // by hash of the schema text
	known     knownSchemas                       // value schemas, for split's fast path
	knownKeys knownSchemas                       // key schemas, apart: they would take turns at the front
	seed      maphash.Seed
	states    sync.Pool                 // of *fastState, for decodeFast
	last      atomic.Pointer[lastEntry] // for knownEntry
}

// Option configures a JSON codec.
type Option func(*JSON)

// WithSchemas chooses between the Connect JsonConverter shape
// {"schema":...,"payload":...} (true, the default) and the bare payload.
func WithSchemas(on bool) Option { return func(j *JSON) { j.schemas = on } }

// WithClock sets the clock that stamps the envelope's top-level ts_ms (the
// time of encoding); the default is time.Now. Tests use a fixed clock.
func WithClock(now func() time.Time) Option { return func(j *JSON) { j.clock = now } }

// NewJSON returns a codec with the given options.
func NewJSON(opts ...Option) *JSON {
	j := &JSON{schemas: true, clock: time.Now}
	for _, o := range opts {
		o(j)
	}
	j.seed = maphash.MakeSeed()
	return j
}

type tableKey struct {
	schema *cdc.TableSchema
	server string
}

// table returns the cached derived form of r's schema.
func (j *JSON) table(r *cdc.Record) (*tableCodec, error) {
	if r.Schema == nil {
		return nil, errors.New("record has no schema")
	}
	k := tableKey{r.Schema, r.Source.Name}
	if t, ok := j.tables.load(k); ok {
		return t, nil
	}
	t, err := newTableCodec(r.Schema, r.Source.Name)
	if err != nil {
		return nil, err
	}
	j.tables.store(k, t)
	return t, nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// finish copies the pooled buffer out and returns it to the pool.
func finish(pb *[]byte, b []byte, err error) ([]byte, error) {
	var out []byte
	if err == nil {
		out = bytes.Clone(b)
	}
	if cap(b) <= 1<<20 {
		*pb = b[:0]
		bufPool.Put(pb)
	}
	return out, err
}

// EncodeKey returns the record's key: the key columns (r.Schema.Key, in key
// order, values from r.Key) as a struct. It returns nil for a table without
// key columns, which Kafka takes as a null key.
func (j *JSON) EncodeKey(r cdc.Record) ([]byte, error) {
	t, err := j.table(&r)
	if err != nil {
		return nil, fmt.Errorf("debezium: encode key of %s: %w", r.Table, err)
	}
	if len(t.keyCols) == 0 {
		return nil, nil
	}
	pb := bufPool.Get().(*[]byte)
	b := *pb
	if j.schemas {
		b = append(b, `{"schema":`...)
		b = append(b, t.keySchema...)
		b = append(b, `,"payload":`...)
	}
	b, err = appendRow(b, t.keyCols, r.Key)
	if j.schemas {
		b = append(b, '}')
	}
	if err != nil {
		err = fmt.Errorf("debezium: encode key of %s: %w", r.Table, err)
	}
	return finish(pb, b, err)
}

// EncodeValue returns the record's envelope. Tombstones are not its business:
// the runtime writes a nil value after a delete itself.
func (j *JSON) EncodeValue(r cdc.Record) ([]byte, error) {
	t, err := j.table(&r)
	if err != nil {
		return nil, fmt.Errorf("debezium: encode value of %s: %w", r.Table, err)
	}
	pb := bufPool.Get().(*[]byte)
	b, err := j.appendEnvelope(*pb, t, &r)
	if err != nil {
		err = fmt.Errorf("debezium: encode value of %s: %w", r.Table, err)
	}
	return finish(pb, b, err)
}

func (j *JSON) appendEnvelope(b []byte, t *tableCodec, r *cdc.Record) ([]byte, error) {
	if r.Op == cdc.OpUnknown || r.Op > cdc.OpTruncate {
		return b, fmt.Errorf("unknown op %d", r.Op)
	}
	var err error
	if j.schemas {
		b = append(b, `{"schema":{"type":"struct","fields":[`...)
		b = append(b, t.rowSchema...)
		b = append(b, `,"field":"before"},`...)
		b = append(b, t.rowSchema...)
		b = append(b, `,"field":"after"},`...)
		if b, err = appendSourceSchema(b, &r.Source); err != nil {
			return b, err
		}
		b = append(b, `,{"type":"string","optional":false,"field":"op"},`+
			`{"type":"int64","optional":true,"field":"ts_ms"},`+
			`{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},`+
			`{"type":"int64","optional":false,"field":"total_order"},`+
			`{"type":"int64","optional":false,"field":"data_collection_order"}],`+
			`"optional":true,"name":"event.block","version":1,"field":"transaction"}],`+
			`"optional":false,"name":`...)
		b = append(b, t.envelopeName...)
		b = append(b, `,"version":1},"payload":`...)
	}
	b = append(b, `{"before":`...)
	if b, err = appendRow(b, t.cols, r.Before); err != nil {
		return b, fmt.Errorf("before: %w", err)
	}
	b = append(b, `,"after":`...)
	if b, err = appendRow(b, t.cols, r.After); err != nil {
		return b, fmt.Errorf("after: %w", err)
	}
	b = append(b, `,"source":`...)
	if b, err = appendSource(b, r); err != nil {
		return b, fmt.Errorf("source: %w", err)
	}
	b = append(b, `,"op":"`...)
	b = append(b, r.Op.String()...)
	b = append(b, `","ts_ms":`...)
	b = appendInt(b, j.clock().UnixMilli())
	b = append(b, `,"transaction":`...)
	if r.TxID == "" {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"id":`...)
		if b, err = appendString(b, r.TxID); err != nil {
			return b, fmt.Errorf("transaction id: %w", err)
		}
		b = append(b, `,"total_order":`...)
		b = appendInt(b, r.Seq)
		b = append(b, `,"data_collection_order":`...)
		b = appendInt(b, r.Seq)
		b = append(b, '}')
	}
	b = append(b, '}')
	if j.schemas {
		b = append(b, '}')
	}
	return b, nil
}

// appendRow appends row as a JSON object with the columns of cols that it
// holds, in column order. A column absent from row is left out.
func appendRow(b []byte, cols []colCodec, row cdc.Row) ([]byte, error) {
	if row == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '{')
	n := 0
	var err error
	for i := range cols {
		c := &cols[i]
		v, ok := row[c.name]
		if !ok {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, c.key...)
		if b, err = appendValue(b, c.kind, c.elem, v); err != nil {
			return b, fmt.Errorf("column %q: %w", c.name, err)
		}
	}
	if n != len(row) {
		for name := range row {
			if !hasColumn(cols, name) {
				return b, fmt.Errorf("column %q is not in the schema", name)
			}
		}
	}
	return append(b, '}'), nil
}

func hasColumn(cols []colCodec, name string) bool {
	for i := range cols {
		if cols[i].name == name {
			return true
		}
	}
	return false
}
