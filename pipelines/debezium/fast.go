package debezium

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// The fast path decodes a message whose key and value schemas are known
// (knownSchemas found both) with one validating pass over the payload and
// no intermediate maps: the payload is most of the decoding work left once
// the schema needs no parsing. It is strict: anything it does not take
// exactly as the full decode would (invalid UTF-8, a lone surrogate, a
// duplicate envelope member) is an error, and Decode then runs the full
// decode, which stays the reference.

// errFastPath is returned for a message the fast path leaves to the full
// decode although it may be valid.
var errFastPath = errors.New("not for the fast path")

// decodeFast decodes a typed message whose value schema vs and key schema
// ks (nil for a table without key columns) were split off by knownSchemas;
// payload and kp are the value and key payloads, both non-null.
func (j *JSON) decodeFast(vs, ks, payload, kp []byte) (cdc.Record, error) {
	var r cdc.Record
	escaped, err := precheck(payload)
	if err != nil {
		return r, err
	}
	st := j.fastState()
	defer j.states.Put(st)
	env, err := st.value.ParseBytes(payload)
	if err != nil {
		return r, err
	}
	o, err := env.Object()
	if err != nil {
		return r, err
	}
	// A member that appears twice counts with its last value, as in the
	// full decode. Unless the payload was validated in full, the numbers
	// of members that are not read (unknown ones, an earlier duplicate)
	// are checked here; those that are read check their own (number).
	var op, src, tx, before, after *fastjson.Value
	var skipped error
	o.Visit(func(k []byte, v *fastjson.Value) {
		var dst **fastjson.Value
		switch string(k) {
		case "op":
			dst = &op
		case "source":
			dst = &src
		case "transaction":
			dst = &tx
		case "before":
			dst = &before
		case "after":
			dst = &after
		}
		unread := v // an unknown member
		if dst != nil {
			unread, *dst = *dst, v // an earlier duplicate, or nil
		}
		if unread != nil && !escaped && skipped == nil {
			skipped = st.strictNumbers(unread)
		}
	})
	if skipped != nil {
		return r, skipped
	}
	if op == nil || src == nil {
		return r, errFastPath
	}
	ob, err := fastString(op)
	if err != nil {
		return r, fmt.Errorf("op: %w", err)
	}
	if r.Op, err = cdc.ParseOp(string(ob)); err != nil {
		return r, err
	}
	so, err := src.Object()
	if err != nil {
		return r, fmt.Errorf("source: %w", err)
	}
	if err := st.source(&r, so); err != nil {
		return r, fmt.Errorf("source: %w", err)
	}
	e, err := j.knownEntry(vs, ks, r.Table)
	if err != nil {
		return r, err
	}
	if err := st.extras(&r, e.source); err != nil {
		return r, fmt.Errorf("source: %w", err)
	}
	if err := st.transaction(&r, tx); err != nil {
		return r, fmt.Errorf("transaction: %w", err)
	}
	if r.Before, err = st.fastRow(e, before, false); err != nil {
		return r, fmt.Errorf("before: %w", err)
	}
	if r.After, err = st.fastRow(e, after, false); err != nil {
		return r, fmt.Errorf("after: %w", err)
	}
	switch {
	case ks == nil || kp == nil:
	case len(e.table.Key) == 0: // a key struct without fields: no key, as in the full decode
		if err := validate(kp); err != nil {
			return r, fmt.Errorf("key: %w", err)
		}
	default:
		if r.Key, err = st.decodeKey(e, kp); err != nil {
			return r, fmt.Errorf("key: %w", err)
		}
	}
	r.Schema = e.table
	return r, nil
}

// precheck checks, before parsing, what fastjson's parser lets through
// and the full decode would not. Text without a backslash holds no escape
// sequence, and in it the parser only errs on the side of leniency about
// numbers (leading zeros, "1.", "NaN", "inf"): each number is checked
// where it is read (number), and the members that are not read with
// strictNumbers, instead of a second pass over every byte. Text with
// escapes is validated in full (escaped reports it).
func precheck(b []byte) (escaped bool, err error) {
	if bytes.IndexByte(b, '\\') < 0 {
		if hasControl(b) {
			return false, errFastPath
		}
		return false, nil
	}
	return true, validate(b)
}

// strictNumbers checks that every number in v is written as JSON allows.
func (st *fastState) strictNumbers(v *fastjson.Value) error {
	switch v.Type() {
	case fastjson.TypeNumber:
		var err error
		st.num, err = number(v, st.num[:0])
		return err
	case fastjson.TypeObject:
		o, _ := v.Object()
		var err error
		o.Visit(func(_ []byte, x *fastjson.Value) {
			if err == nil {
				err = st.strictNumbers(x)
			}
		})
		return err
	case fastjson.TypeArray:
		xs, _ := v.Array()
		for _, x := range xs {
			if err := st.strictNumbers(x); err != nil {
				return err
			}
		}
	}
	return nil
}

// isJSONNumber reports whether b is a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}

// validate checks that b is JSON the fast path may parse. fastjson's
// validation misses a raw control character in a string before its last
// escape sequence, which encoding/json rejects: text with any byte below
// 0x20 (our encoder and Connect's write none, not even whitespace) is left
// to the full decode.
func validate(b []byte) error {
	if hasControl(b) {
		return errFastPath
	}
	return fastjson.ValidateBytes(b)
}

// hasControl reports whether b holds a byte below 0x20, eight bytes at a
// time: a word has one when (x - 0x20 in every byte) borrows into a byte
// whose own high bit was clear.
func hasControl(b []byte) bool {
	const lo, hi = 0x2020202020202020, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if (x-lo)&^x&hi != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// knownEntry is schemaEntry for schema texts that knownSchemas returned:
// those are the slices it keeps, so the entry of the last pair is found
// again by identity instead of by hashing the texts.
func (j *JSON) knownEntry(vs, ks []byte, t cdc.TableID) (*schemaEntry, error) {
	if l := j.last.Load(); l != nil && sameSlice(l.vs, vs) && sameSlice(l.ks, ks) && l.entry.table.Table == t {
		return l.entry, nil
	}
	e, err := j.schemaEntry(vs, ks, t)
	if err != nil {
		return nil, err
	}
	j.last.Store(&lastEntry{vs: vs, ks: ks, entry: e})
	return e, nil
}

// lastEntry is the schema entry of the last known schema pair decoded.
type lastEntry struct {
	vs, ks []byte
	entry  *schemaEntry
}

func sameSlice(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0]
}

// fastString returns the bytes of a JSON string that are valid UTF-8.
func fastString(v *fastjson.Value) ([]byte, error) {
	b, err := v.StringBytes()
	if err != nil {
		return nil, err
	}
	if !plainText(b) {
		return nil, errFastPath
	}
	return b, nil
}

// plainText reports whether the full decode would read the unescaped
// string b as it is.
//
// fastjson turns a broken surrogate pair (\uD800 followed by any \uXXXX)
// into one U+FFFD and drops the second escape, where encoding/json keeps
// it: text holding U+FFFD is left to the full decode too.
func plainText(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf || c == '\\' {
			return utf8.Valid(b) && !maybeSurrogate(b) && !bytes.Contains(b, []byte(replacementChar))
		}
	}
	return true
}

const replacementChar = "\uFFFD"

// maybeSurrogate reports whether b holds the text of a \uD800-\uDFFF
// escape: fastjson keeps a lone surrogate escape as text, where the full
// decode makes it U+FFFD. A string that really holds such text (escaped
// backslash) only costs a full decode.
func maybeSurrogate(b []byte) bool {
	for {
		i := bytes.Index(b, []byte(`\u`))
		if i < 0 || i+3 >= len(b) {
			return false
		}
		if c := b[i+2]; (c == 'd' || c == 'D') && strings.ContainsRune("89abcdefABCDEF", rune(b[i+3])) {
			return true
		}
		b = b[i+2:]
	}
}

// fastState is what one decodeFast call works with; the codec pools them,
// so decoders running in parallel each have their own.
type fastState struct {
	value, keyParser fastjson.Parser
	// strs interns the source block's strings, which repeat from one
	// record to the next.
	strs map[string]string
	// pending are the source block's extra members, typed once the
	// schema entry is known.
	pending []member
	num     []byte // scratch for the text of a number
}

type member struct {
	name string
	v    *fastjson.Value
}

// maxInterned bounds fastState.strs.
const maxInterned = 256

func (j *JSON) fastState() *fastState {
	if st, ok := j.states.Get().(*fastState); ok {
		return st
	}
	return &fastState{strs: map[string]string{}}
}

// intern returns b as a string, the same string for the same bytes.
func (st *fastState) intern(b []byte) string {
	if s, ok := st.strs[string(b)]; ok {
		return s
	}
	if len(st.strs) >= maxInterned {
		clear(st.strs)
	}
	s := string(b)
	st.strs[s] = s
	return s
}

// optString decodes a string member of the source block; null is "".
func (st *fastState) optString(v *fastjson.Value, dst *string) error {
	if v.Type() == fastjson.TypeNull {
		*dst = ""
		return nil
	}
	b, err := fastString(v)
	if err != nil {
		return err
	}
	*dst = st.intern(b)
	return nil
}

// source fills r.Table, r.Source (but for its extra members, which it
// keeps for extras) and r.CommitTime from the source block. Members count
// with their last value, as in the full decode.
func (st *fastState) source(r *cdc.Record, src *fastjson.Object) error {
	s := &r.Source
	// ts_us and ts_ns count when present and not null (commitTime).
	var ms, us, ns int64
	var hasUS, hasNS bool
	var errs []error
	st.pending = st.pending[:0]
	src.Visit(func(k []byte, v *fastjson.Value) {
		var err error
		// Switching on string(k) does not allocate; naming a variable
		// after it would, once per member.
		switch string(k) {
		case "connector":
			err = st.optString(v, &s.Connector)
		case "name":
			err = st.optString(v, &s.Name)
		case "db":
			err = st.optString(v, &s.DB)
		case "snapshot":
			err = st.optString(v, &s.Snapshot)
		case "schema":
			err = st.optString(v, &r.Table.Schema)
		case "table":
			err = st.optString(v, &r.Table.Name)
		case "ts_ms":
			ms, _, err = st.optInt(v)
		case "ts_us":
			us, hasUS, err = st.optInt(v)
		case "ts_ns":
			ns, hasNS, err = st.optInt(v)
		default:
			switch {
			case !plainText(k):
				err = errFastPath
			case !isSourceField(string(k)):
				st.pending = append(st.pending, member{st.intern(k), v})
			default: // not read: its numbers are only checked
				err = st.strictNumbers(v)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var usp, nsp *int64
	if hasUS {
		usp = &us
	}
	if hasNS {
		nsp = &ns
	}
	r.CommitTime = commitTime(ms, usp, nsp)
	return nil
}

// optInt decodes an int64 member of the source block; null is (0, false).
func (st *fastState) optInt(v *fastjson.Value) (int64, bool, error) {
	if v.Type() == fastjson.TypeNull {
		return 0, false, nil
	}
	n, err := st.fastInt(v, 64)
	return n, err == nil, err
}

// extras decodes the source block's extra members that source kept, typed
// by the source block's schema.
func (st *fastState) extras(r *cdc.Record, schema *connectSchema) error {
	for _, m := range st.pending {
		typ := ""
		if f := schema.field(m.name); f != nil {
			typ = f.Type
		}
		x, err := st.fastExtra(typ, m.v)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if r.Source.Extra == nil {
			r.Source.Extra = make(map[string]any, len(st.pending))
		}
		r.Source.Extra[m.name] = x
	}
	st.pending = st.pending[:0]
	return nil
}

// fastExtra is decodeExtra on a parsed value.
func (st *fastState) fastExtra(typ string, v *fastjson.Value) (any, error) {
	if v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	if typ == "" {
		switch v.Type() {
		case fastjson.TypeString:
			typ = typeString
		case fastjson.TypeTrue, fastjson.TypeFalse:
			typ = typeBoolean
		case fastjson.TypeNumber:
			if n, err := st.fastInt(v, 64); err == nil {
				return n, nil
			}
			typ = typeDouble
		default:
			return nil, errors.New("want a string, number or bool")
		}
	}
	switch typ {
	case typeInt64:
		return st.fastInt(v, 64)
	case typeDouble:
		return st.fastFloat(v, 64)
	case typeBoolean:
		return v.Bool()
	case typeString:
		b, err := fastString(v)
		return string(b), err
	}
	return nil, fmt.Errorf("unsupported type %q", typ)
}

func (st *fastState) transaction(r *cdc.Record, tx *fastjson.Value) error {
	if tx == nil || tx.Type() == fastjson.TypeNull {
		return nil
	}
	o, err := tx.Object()
	if err != nil {
		return err
	}
	// Members count with their last value, as in the full decode
	// (Object.Get would return the first).
	// What is not read (other members, an earlier duplicate) has its
	// numbers checked, as decodeFast does for the envelope.
	var id, order *fastjson.Value
	var skipped error
	o.Visit(func(k []byte, v *fastjson.Value) {
		unread := v
		switch string(k) {
		case "id":
			unread, id = id, v
		case "total_order":
			unread, order = order, v
		}
		if unread != nil && skipped == nil {
			skipped = st.strictNumbers(unread)
		}
	})
	if skipped != nil {
		return skipped
	}
	if id == nil {
		return errFastPath
	}
	if id.Type() != fastjson.TypeNull {
		b, err := fastString(id)
		if err != nil {
			return fmt.Errorf("id: %w", err)
		}
		r.TxID = string(b)
	}
	if r.TxID == "" {
		return nil
	}
	if order == nil {
		return errFastPath
	}
	if r.Seq, err = st.fastInt(order, 64); err != nil {
		return fmt.Errorf("total_order: %w", err)
	}
	return nil
}

// fastRow decodes a before or after object (key: a key object); null or
// missing is nil.
func (st *fastState) fastRow(e *schemaEntry, v *fastjson.Value, key bool) (cdc.Row, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	o, err := v.Object()
	if err != nil {
		return nil, err
	}
	// Members come in the schema's order, as encoders write them: the
	// column at the member's position is tried before the index.
	order := e.all
	if key {
		order = e.key
	}
	row := make(cdc.Row, o.Len())
	n := 0
	o.Visit(func(k []byte, x *fastjson.Value) {
		if err != nil {
			return
		}
		i := -1
		if n < len(order) && e.table.Columns[order[n]].Name == string(k) {
			i = order[n]
		} else if j, ok := e.index[string(k)]; ok {
			i = j
		}
		n++
		switch {
		case i < 0 && !plainText(k):
			err = errFastPath
			return
		case i < 0:
			err = fmt.Errorf("column %q is not in the schema", k)
			return
		case key && !slices.Contains(e.key, i):
			err = fmt.Errorf("column %q is not a key column", k)
			return
		}
		c := &e.table.Columns[i]
		var val any
		if val, err = st.fastValue(c.Kind, c.Elem, x); err != nil {
			err = fmt.Errorf("column %q: %w", c.Name, err)
			return
		}
		row[c.Name] = val
	})
	if err != nil {
		return nil, err
	}
	return row, nil
}

// decodeKey decodes the key payload kp under the key schema of e.
func (st *fastState) decodeKey(e *schemaEntry, kp []byte) (cdc.Row, error) {
	if err := validate(kp); err != nil {
		return nil, err
	}
	v, err := st.keyParser.ParseBytes(kp)
	if err != nil {
		return nil, err
	}
	return st.fastRow(e, v, true)
}

// number appends the text of a JSON number to buf. The parser also takes
// what JSON does not allow (leading zeros, "1.", "NaN"), which would make
// the fast path accept a message the full decode rejects: number leaves
// such text to the full decode.
func number(v *fastjson.Value, buf []byte) ([]byte, error) {
	if v.Type() != fastjson.TypeNumber {
		return nil, fmt.Errorf("want a number, got %s", v.Type())
	}
	b := v.MarshalTo(buf)
	if !isJSONNumber(b) {
		return nil, errFastPath
	}
	return b, nil
}

func (st *fastState) fastInt(v *fastjson.Value, bits int) (int64, error) {
	var err error
	if st.num, err = number(v, st.num[:0]); err != nil {
		return 0, err
	}
	n, err := v.Int64() // digits only: no fraction, no exponent
	if err != nil {
		return 0, err
	}
	if bits < 64 && (n < -1<<(bits-1) || n >= 1<<(bits-1)) {
		return 0, fmt.Errorf("%d out of range for int%d", n, bits)
	}
	return n, nil
}

func (st *fastState) fastFloat(v *fastjson.Value, bits int) (float64, error) {
	if v.Type() == fastjson.TypeString {
		s, err := fastString(v)
		if err != nil {
			return 0, err
		}
		switch string(s) {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("float %q: want a number, NaN, Infinity or -Infinity", s)
	}
	var err error
	if st.num, err = number(v, st.num[:0]); err != nil {
		return 0, err
	}
	return strconv.ParseFloat(string(st.num), bits)
}

// fastValue is decodeValue on a parsed value.
func (st *fastState) fastValue(k, elem cdc.Kind, v *fastjson.Value) (any, error) {
	if v.Type() == fastjson.TypeNull {
		return nil, nil
	}
	switch k {
	case cdc.KindBool:
		return v.Bool()
	case cdc.KindInt16:
		n, err := st.fastInt(v, 16)
		return int16(n), err
	case cdc.KindInt32:
		n, err := st.fastInt(v, 32)
		return int32(n), err
	case cdc.KindInt64:
		return st.fastInt(v, 64)
	case cdc.KindFloat32:
		f, err := st.fastFloat(v, 32)
		return float32(f), err
	case cdc.KindFloat64:
		return st.fastFloat(v, 64)
	case cdc.KindDate:
		n, err := st.fastInt(v, 64)
		if err != nil {
			return nil, err
		}
		return dateFromDays(n)
	case cdc.KindTime:
		n, err := st.fastInt(v, 64)
		if err != nil {
			return nil, err
		}
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			return nil, fmt.Errorf("time %d µs out of range", n)
		}
		return time.Duration(n) * time.Microsecond, nil
	case cdc.KindTimestamp:
		n, err := st.fastInt(v, 64)
		if err != nil {
			return nil, err
		}
		return timestampFromMicros(n)
	case cdc.KindArray:
		xs, err := v.Array()
		if err != nil {
			return nil, err
		}
		return st.fastArray(elem, xs)
	}
	s, err := fastString(v)
	if err != nil {
		return nil, err
	}
	return decodeString(k, string(s))
}

func (st *fastState) fastArray(elem cdc.Kind, xs []*fastjson.Value) ([]any, error) {
	out := make([]any, len(xs))
	for i, x := range xs {
		var err error
		if x.Type() == fastjson.TypeArray {
			var sub []*fastjson.Value
			if sub, err = x.Array(); err == nil {
				out[i], err = st.fastArray(elem, sub)
			}
		} else {
			out[i], err = st.fastValue(elem, cdc.KindUnknown, x)
		}
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
	}
	return out, nil
}
