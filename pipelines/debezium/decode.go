package debezium

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Decode rebuilds a record from a key and value written by EncodeKey and
// EncodeValue: Table, Op, Key, Before, After, TxID, Seq, CommitTime,
// Source and Schema (columns with kinds, key). Position is not part of the
// wire format and stays nil; Seq survives only inside a transaction (TxID
// not empty). Source.Extra numbers come back as int64 or float64.
//
// Without schemas (bare payloads), kinds are unknown: columns get
// KindUnknown and values stay as encoding/json decodes them with UseNumber
// (json.Number, string, bool, []any, map[string]any). Such a record cannot
// be encoded again.
//
// A null or empty value returns ErrTombstone together with a record that
// holds only Key and a Schema of the key columns (Table and Op unknown), so
// a reader can tell which row the tombstone is for. A nil key means a table
// without key columns.
func (j *JSON) Decode(key, value []byte) (cdc.Record, error) {
	if r, ok := j.tryFast(key, value); ok {
		return r, nil
	}
	r, err := j.decode(key, value, true)
	if err != nil && !errors.Is(err, ErrTombstone) {
		// The fast split may have misread an odd message: parse it fully.
		r, err = j.decode(key, value, false)
	}
	if err != nil && !errors.Is(err, ErrTombstone) {
		err = fmt.Errorf("debezium: decode: %w", err)
	}
	return r, err
}

// tryFast decodes with decodeFast when the message's schemas are known;
// false sends it to the full decode.
func (j *JSON) tryFast(key, value []byte) (cdc.Record, bool) {
	vs, payload, ok := j.known.split(value)
	if !ok || payload == nil {
		return cdc.Record{}, false
	}
	var ks, kp []byte
	if len(key) > 0 && !bytes.Equal(key, jsonNull) {
		if ks, kp, ok = j.knownKeys.split(key); !ok {
			return cdc.Record{}, false
		}
	}
	r, err := j.decodeFast(vs, ks, payload, kp)
	return r, err == nil
}

func (j *JSON) decode(key, value []byte, fast bool) (cdc.Record, error) {
	var r cdc.Record
	vs, payload, err := j.split(&j.known, value, fast)
	if err != nil {
		return r, fmt.Errorf("value: %w", err)
	}
	ks, kp, err := j.split(&j.knownKeys, key, fast)
	if err != nil {
		return r, fmt.Errorf("key: %w", err)
	}
	if payload == nil {
		return tombstone(ks, kp)
	}
	env, err := object(payload)
	if err != nil {
		return r, fmt.Errorf("value payload: %w", err)
	}
	var op string
	if err := json.Unmarshal(env["op"], &op); err != nil {
		return r, fmt.Errorf("op: %w", err)
	}
	if r.Op, err = cdc.ParseOp(op); err != nil {
		return r, err
	}
	src, err := object(env["source"])
	if err != nil {
		return r, fmt.Errorf("source: %w", err)
	}
	if r.Table, err = tableOf(src); err != nil {
		return r, fmt.Errorf("source: %w", err)
	}
	d := &rowDecoder{}
	if vs != nil {
		if d.entry, err = j.schemaEntry(vs, ks, r.Table); err != nil {
			return r, err
		}
	}
	if err := decodeSource(&r, src, d.sourceSchema()); err != nil {
		return r, fmt.Errorf("source: %w", err)
	}
	if err := decodeTransaction(&r, env["transaction"]); err != nil {
		return r, fmt.Errorf("transaction: %w", err)
	}
	if r.Before, err = d.row(env["before"]); err != nil {
		return r, fmt.Errorf("before: %w", err)
	}
	if r.After, err = d.row(env["after"]); err != nil {
		return r, fmt.Errorf("after: %w", err)
	}
	if r.Key, err = d.key(kp, ks != nil); err != nil {
		return r, fmt.Errorf("key: %w", err)
	}
	r.Schema = d.schema(r.Table)
	return r, nil
}

// tombstone returns ErrTombstone with the record's Key and a Schema holding
// only the key columns (typed when the key has a schema); Table and Op stay
// unknown.
func tombstone(ks, kp json.RawMessage) (cdc.Record, error) {
	var r cdc.Record
	d := &rowDecoder{}
	if ks != nil {
		kst, err := parseStruct(ks)
		if err != nil {
			return r, fmt.Errorf("key schema: %w", err)
		}
		e := &schemaEntry{table: &cdc.TableSchema{}, index: map[string]int{}}
		for i := range kst.Fields {
			c, err := kst.Fields[i].column()
			if err != nil {
				return r, fmt.Errorf("key schema: %w", err)
			}
			if _, dup := e.index[c.Name]; dup {
				return r, fmt.Errorf("key schema: column %q appears twice", c.Name)
			}
			e.index[c.Name] = len(e.table.Columns)
			e.table.Columns = append(e.table.Columns, c)
			e.table.Key = append(e.table.Key, c.Name)
		}
		d.entry = e
	}
	var err error
	if r.Key, err = d.key(kp, ks != nil); err != nil {
		return r, fmt.Errorf("key: %w", err)
	}
	r.Schema = d.schema(r.Table)
	return r, ErrTombstone
}

// split is the package's split, first trying (when fast) the known
// schemas k, and remembering in k the schema it parsed.
func (j *JSON) split(k *knownSchemas, data []byte, fast bool) (schema, payload json.RawMessage, err error) {
	if fast {
		if s, p, ok := k.split(data); ok {
			return s, p, nil
		}
	}
	schema, payload, err = split(data)
	if err == nil && schema != nil {
		k.add(data, schema)
	}
	return schema, payload, err
}

// split splits a Connect JsonConverter message into the text of its schema
// and its payload. A message without both "schema" and "payload" is a bare
// payload. Nil means null (or, for the schema, absent).
func split(data []byte) (schema, payload json.RawMessage, err error) {
	if len(data) == 0 || bytes.Equal(data, jsonNull) {
		return nil, nil, nil
	}
	top, err := object(data)
	if err != nil {
		return nil, nil, err
	}
	s, hasSchema := top["schema"]
	p, hasPayload := top["payload"]
	if !hasSchema || !hasPayload || len(top) != 2 {
		return nil, data, nil
	}
	if bytes.Equal(p, jsonNull) {
		p = nil
	}
	if bytes.Equal(s, jsonNull) {
		s = nil
	}
	return s, p, nil
}

func parseStruct(raw json.RawMessage) (*connectSchema, error) {
	var cs connectSchema
	if err := json.Unmarshal(raw, &cs); err != nil {
		return nil, err
	}
	if cs.Type != typeStruct {
		return nil, fmt.Errorf("want a struct, got %q", cs.Type)
	}
	return &cs, nil
}

// object decodes a JSON object into its members.
func object(raw []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("want an object, got null")
	}
	return m, nil
}

// orderedKeys returns the member names of a JSON object in order, once each.
func orderedKeys(raw []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("want an object")
	}
	var keys []string
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func decodeTransaction(r *cdc.Record, raw json.RawMessage) error {
	if len(raw) == 0 || bytes.Equal(raw, jsonNull) {
		return nil
	}
	tx, err := object(raw)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(tx["id"], &r.TxID); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if r.TxID == "" {
		return nil
	}
	if r.Seq, err = strconv.ParseInt(string(tx["total_order"]), 10, 64); err != nil {
		return fmt.Errorf("total_order: %w", err)
	}
	return nil
}

// sourceString decodes a string field of the source block; null or absent
// is "".
func sourceString(src map[string]json.RawMessage, name string, dst *string) error {
	v, ok := src[name]
	if !ok || bytes.Equal(v, jsonNull) {
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func tableOf(src map[string]json.RawMessage) (cdc.TableID, error) {
	var t cdc.TableID
	err := errors.Join(sourceString(src, "schema", &t.Schema), sourceString(src, "table", &t.Name))
	return t, err
}

func decodeSource(r *cdc.Record, src map[string]json.RawMessage, schema *connectSchema) error {
	str := func(name string, dst *string) error { return sourceString(src, name, dst) }
	num := func(name string) (*int64, error) {
		v, ok := src[name]
		if !ok || bytes.Equal(v, jsonNull) {
			return nil, nil
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return &n, nil
	}
	s := &r.Source
	var errs []error
	errs = append(errs, str("connector", &s.Connector), str("name", &s.Name), str("db", &s.DB),
		str("snapshot", &s.Snapshot))
	ms, err1 := num("ts_ms")
	us, err2 := num("ts_us")
	ns, err3 := num("ts_ns")
	if err := errors.Join(append(errs, err1, err2, err3)...); err != nil {
		return err
	}
	var m int64
	if ms != nil {
		m = *ms
	}
	r.CommitTime = commitTime(m, us, ns)
	for k, v := range src {
		if isSourceField(k) {
			continue
		}
		typ := ""
		if f := schema.field(k); f != nil {
			typ = f.Type
		}
		x, err := decodeExtra(typ, v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if s.Extra == nil {
			s.Extra = make(map[string]any)
		}
		s.Extra[k] = x
	}
	return nil
}

// decodeExtra decodes a source Extra field of Connect type typ ("" when
// there is no schema: the type then follows the JSON value).
func decodeExtra(typ string, raw json.RawMessage) (any, error) {
	if bytes.Equal(raw, jsonNull) {
		return nil, nil
	}
	if typ == "" {
		switch raw[0] {
		case '"':
			typ = typeString
		case 't', 'f':
			typ = typeBoolean
		case '{', '[':
			return nil, errors.New("want a string, number or bool")
		default:
			if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
				return n, nil
			}
			typ = typeDouble
		}
	}
	switch typ {
	case typeInt64:
		return strconv.ParseInt(string(raw), 10, 64)
	case typeDouble:
		return decodeFloat(raw, 64)
	case typeBoolean:
		var b bool
		return b, json.Unmarshal(raw, &b)
	case typeString:
		var s string
		return s, json.Unmarshal(raw, &s)
	}
	return nil, fmt.Errorf("unsupported type %q", typ)
}
