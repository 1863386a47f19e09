package debezium

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// The source block's standard fields, in order. Extra fields follow them,
// sorted by name.
var sourceFields = [...]string{"version", "connector", "name", "ts_ms", "snapshot", "db",
	"ts_us", "ts_ns", "schema", "table"}

func isSourceField(name string) bool { return slices.Contains(sourceFields[:], name) }

const sourceSchemaHead = `{"type":"struct","fields":[` +
	`{"type":"string","optional":false,"field":"version"},` +
	`{"type":"string","optional":false,"field":"connector"},` +
	`{"type":"string","optional":false,"field":"name"},` +
	`{"type":"int64","optional":false,"field":"ts_ms"},` +
	`{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,` +
	`"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},` +
	`"field":"snapshot"},` +
	`{"type":"string","optional":false,"field":"db"},` +
	`{"type":"int64","optional":true,"field":"ts_us"},` +
	`{"type":"int64","optional":true,"field":"ts_ns"},` +
	`{"type":"string","optional":false,"field":"schema"},` +
	`{"type":"string","optional":false,"field":"table"}`

// extraKeys returns the names of src.Extra, sorted.
// keys is appended to; pass a stack buffer to save an allocation.
func extraKeys(src *cdc.SourceInfo, keys []string) ([]string, error) {
	for k := range src.Extra {
		if isSourceField(k) {
			return nil, fmt.Errorf("extra field %q clashes with a standard field", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// appendSourceSchema appends the source block's schema (with a leading comma).
func appendSourceSchema(b []byte, src *cdc.SourceInfo) ([]byte, error) {
	var buf [8]string
	keys, err := extraKeys(src, buf[:0])
	if err != nil {
		return b, fmt.Errorf("source: %w", err)
	}
	b = append(b, sourceSchemaHead...)
	for _, k := range keys {
		typ, err := extraType(src.Extra[k])
		if err != nil {
			return b, fmt.Errorf("source field %q: %w", k, err)
		}
		b = append(b, `,{"type":"`...)
		b = append(b, typ...)
		b = append(b, `","optional":true,"field":`...)
		if b, err = appendString(b, k); err != nil {
			return b, fmt.Errorf("source field %q: %w", k, err)
		}
		b = append(b, '}')
	}
	b = append(b, `],"optional":false,"name":"io.debezium.connector.`...)
	if b, err = appendStringBody(b, src.Connector); err != nil {
		return b, fmt.Errorf("connector: %w", err)
	}
	return append(b, `.Source","field":"source"}`...), nil
}

// appendStringBody appends s escaped for JSON, without quotes.
func appendStringBody(b []byte, s string) ([]byte, error) {
	n := len(b)
	b, err := appendString(b, s)
	if err != nil {
		return b, err
	}
	copy(b[n:], b[n+1:len(b)-1])
	return b[:len(b)-2], nil
}

// appendSource appends the source block's payload.
func appendSource(b []byte, r *cdc.Record) ([]byte, error) {
	src := &r.Source
	var buf [8]string
	keys, err := extraKeys(src, buf[:0])
	if err != nil {
		return b, err
	}
	b = append(b, `{"version":"`+Version+`","connector":`...)
	for _, f := range []struct {
		v, after string
	}{
		{src.Connector, `,"name":`},
		{src.Name, `,"ts_ms":`},
	} {
		if b, err = appendString(b, f.v); err != nil {
			return b, err
		}
		b = append(b, f.after...)
	}
	ct := r.CommitTime
	b = appendInt(b, ct.UnixMilli())
	b = append(b, `,"snapshot":`...)
	if src.Snapshot == "" {
		b = append(b, "null"...)
	} else if b, err = appendString(b, src.Snapshot); err != nil {
		return b, err
	}
	b = append(b, `,"db":`...)
	if b, err = appendString(b, src.DB); err != nil {
		return b, err
	}
	b = append(b, `,"ts_us":`...)
	b = appendInt(b, ct.UnixMicro())
	b = append(b, `,"ts_ns":`...)
	if y := ct.Year(); y > 1677 && y < 2262 {
		b = appendInt(b, ct.UnixNano())
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"schema":`...)
	if b, err = appendString(b, r.Table.Schema); err != nil {
		return b, err
	}
	b = append(b, `,"table":`...)
	if b, err = appendString(b, r.Table.Name); err != nil {
		return b, err
	}
	for _, k := range keys {
		b = append(b, ',')
		if b, err = appendString(b, k); err != nil {
			return b, fmt.Errorf("field %q: %w", k, err)
		}
		b = append(b, ':')
		if b, err = appendExtra(b, src.Extra[k]); err != nil {
			return b, fmt.Errorf("field %q: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

func appendExtra(b []byte, v any) ([]byte, error) {
	switch x := v.(type) { // the common types, without boxing them again
	case string:
		return appendString(b, x)
	case int64:
		return appendInt(b, x), nil
	}
	_, n, err := extraValue(v)
	if err != nil {
		return b, err
	}
	switch x := n.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int64:
		return appendInt(b, x), nil
	case float64:
		return appendFloat(b, x, 64), nil
	default:
		return appendString(b, x.(string))
	}
}

// extraType returns the Connect type of a source Extra value.
func extraType(v any) (string, error) {
	switch v.(type) { // the common types, without boxing them again
	case string, nil:
		return typeString, nil
	case int64:
		return typeInt64, nil
	}
	t, _, err := extraValue(v)
	return t, err
}

// extraValue returns the Connect type of a source Extra value and the value
// as one of nil, bool, int64, float64 or string: integers of every width
// become int64 (unsigned ones must fit), floats float64. Named types over
// those (an LSN type over uint64, say) are converted the same way.
func extraValue(v any) (string, any, error) {
	switch x := v.(type) {
	case nil:
		return typeString, nil, nil
	case string:
		return typeString, x, nil
	case int64:
		return typeInt64, x, nil
	case bool:
		return typeBoolean, x, nil
	case float64:
		return typeDouble, x, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return typeString, rv.String(), nil
	case reflect.Bool:
		return typeBoolean, rv.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return typeInt64, rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if u := rv.Uint(); u <= math.MaxInt64 {
			return typeInt64, int64(u), nil
		}
		return "", nil, fmt.Errorf("value %v out of int64 range", v)
	case reflect.Float32, reflect.Float64:
		return typeDouble, rv.Float(), nil
	}
	return "", nil, fmt.Errorf("unsupported type %T (want a string, number or bool)", v)
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// commitTime rebuilds the commit time from ts_ns, ts_us or ts_ms, the most
// precise one present.
func commitTime(ms int64, us, ns *int64) time.Time {
	switch {
	case ns != nil:
		return time.Unix(0, *ns).UTC()
	case us != nil:
		return time.UnixMicro(*us).UTC()
	}
	return time.UnixMilli(ms).UTC()
}
