package debezium

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// schemaEntry is what Decode derives from a value schema and key schema;
// the codec caches it, so decoded records with the same schema share one
// *cdc.TableSchema.
type schemaEntry struct {
	valueSchema, keySchema string // the texts, to tell hash collisions apart
	table                  *cdc.TableSchema
	index                  map[string]int
	all                    []int // 0, 1, ... len(table.Columns)-1
	key                    []int // the key's columns (indexes into table.Columns), in key order
	source                 *connectSchema
}

func (j *JSON) schemaEntry(vs, ks []byte, t cdc.TableID) (*schemaEntry, error) {
	var h maphash.Hash
	h.SetSeed(j.seed)
	h.Write(vs)
	h.WriteByte(0)
	h.Write(ks)
	h.WriteByte(0)
	h.WriteString(t.Schema)
	h.WriteByte(0)
	h.WriteString(t.Name)
	sum := h.Sum64()
	if e, ok := j.decoded.load(sum); ok && e.valueSchema == string(vs) && e.keySchema == string(ks) &&
		e.table.Table == t {
		return e, nil
	}
	e, err := newSchemaEntry(vs, ks, t)
	if err != nil {
		return nil, err
	}
	j.decoded.store(sum, e)
	return e, nil
}

func newSchemaEntry(vs, ks []byte, t cdc.TableID) (*schemaEntry, error) {
	env, err := parseStruct(vs)
	if err != nil {
		return nil, fmt.Errorf("value schema: %w", err)
	}
	e := &schemaEntry{valueSchema: string(vs), keySchema: string(ks),
		table: &cdc.TableSchema{Table: t}, source: env.field("source")}
	rs := env.field("after")
	if rs == nil || rs.Type != typeStruct {
		rs = env.field("before")
	}
	if rs == nil || rs.Type != typeStruct {
		return nil, fmt.Errorf("value schema: no before or after struct")
	}
	e.index = make(map[string]int, len(rs.Fields))
	for i := range rs.Fields {
		c, err := rs.Fields[i].column()
		if err != nil {
			return nil, fmt.Errorf("value schema: %w", err)
		}
		if _, dup := e.index[c.Name]; dup {
			return nil, fmt.Errorf("value schema: column %q appears twice", c.Name)
		}
		e.index[c.Name] = len(e.table.Columns)
		e.all = append(e.all, len(e.table.Columns))
		e.table.Columns = append(e.table.Columns, c)
	}
	if ks == nil {
		return e, nil
	}
	kst, err := parseStruct(ks)
	if err != nil {
		return nil, fmt.Errorf("key schema: %w", err)
	}
	for i := range kst.Fields {
		c, err := kst.Fields[i].column()
		if err != nil {
			return nil, fmt.Errorf("key schema: %w", err)
		}
		vi, ok := e.index[c.Name]
		if !ok {
			return nil, fmt.Errorf("key schema: column %q is not in the value schema", c.Name)
		}
		if vc := e.table.Columns[vi]; vc.Kind != c.Kind || vc.Elem != c.Elem {
			return nil, fmt.Errorf("key schema: column %q is %s in the key but %s in the value",
				c.Name, c.Kind, vc.Kind)
		}
		if slices.Contains(e.table.Key, c.Name) {
			return nil, fmt.Errorf("key schema: column %q appears twice", c.Name)
		}
		e.table.Key = append(e.table.Key, c.Name)
		e.key = append(e.key, vi)
	}
	return e, nil
}

// rowDecoder decodes the rows and the key of one message, typed by the
// value's schema entry or, without one, untyped.
type rowDecoder struct {
	entry *schemaEntry
	// Untyped decoding, or a bare key under a typed value, builds its own.
	cols     []cdc.Column
	index    map[string]int
	keyNames []string
	ownKey   bool
}

func (d *rowDecoder) sourceSchema() *connectSchema {
	if d.entry == nil {
		return nil
	}
	return d.entry.source
}

// schema returns the record's table schema.
func (d *rowDecoder) schema(t cdc.TableID) *cdc.TableSchema {
	switch {
	case d.entry == nil:
		return &cdc.TableSchema{Table: t, Columns: d.cols, Key: d.keyNames}
	case d.ownKey:
		c := *d.entry.table
		c.Key = d.keyNames
		return &c
	}
	return d.entry.table
}

// column returns the named column; untyped decoders add unknown ones.
func (d *rowDecoder) column(name string) (*cdc.Column, error) {
	if d.entry != nil {
		if i, ok := d.entry.index[name]; ok {
			return &d.entry.table.Columns[i], nil
		}
		return nil, fmt.Errorf("column %q is not in the schema", name)
	}
	if i, ok := d.index[name]; ok {
		return &d.cols[i], nil
	}
	if d.index == nil {
		d.index = map[string]int{}
	}
	d.index[name] = len(d.cols)
	d.cols = append(d.cols, cdc.Column{Name: name})
	return &d.cols[len(d.cols)-1], nil
}

// row decodes a before, after or key object; null or missing is nil.
func (d *rowDecoder) row(raw json.RawMessage) (cdc.Row, error) {
	if len(raw) == 0 || bytes.Equal(raw, jsonNull) {
		return nil, nil
	}
	if d.entry == nil {
		return d.untypedRow(raw)
	}
	m, err := object(raw)
	if err != nil {
		return nil, err
	}
	row := make(cdc.Row, len(m))
	for name, v := range m {
		c, err := d.column(name)
		if err != nil {
			return nil, err
		}
		if row[name], err = decodeValue(c.Kind, c.Elem, v); err != nil {
			return nil, fmt.Errorf("column %q: %w", name, err)
		}
	}
	return row, nil
}

func (d *rowDecoder) untypedRow(raw json.RawMessage) (cdc.Row, error) {
	names, err := orderedKeys(raw)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, err := d.column(n); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var row cdc.Row
	if err := dec.Decode(&row); err != nil {
		return nil, err
	}
	return row, nil
}

// key decodes the key payload (nil for null). With a key schema the key
// names come from it; otherwise from the order of the payload's members.
func (d *rowDecoder) key(payload json.RawMessage, hasSchema bool) (cdc.Row, error) {
	names := d.keyNames
	switch {
	case d.entry != nil && hasSchema:
		names = d.entry.table.Key
	case payload != nil:
		ks, err := orderedKeys(payload)
		if err != nil {
			return nil, err
		}
		d.keyNames, d.ownKey, names = ks, true, ks
	}
	if len(names) == 0 || payload == nil {
		return nil, nil
	}
	row, err := d.row(payload)
	if err != nil {
		return nil, err
	}
	for n := range row {
		if !slices.Contains(names, n) {
			return nil, fmt.Errorf("column %q is not a key column", n)
		}
	}
	return row, nil
}
