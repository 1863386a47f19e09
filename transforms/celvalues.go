package transforms

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// rowVal is a row, or a JSON object, as CEL sees it: a map that iterates
// in key order (so that expressions that iterate are deterministic) and,
// for a row, notes the fields it was asked for and did not have.
type rowVal struct {
	traits.Mapper
	m   map[string]any
	act *activation // nil: not a row
}

func (m *rowVal) Find(key ref.Val) (ref.Val, bool) {
	v, found := m.Mapper.Find(key)
	if !found && m.act != nil {
		if k, ok := key.(types.String); ok && len(m.act.missed) < 64 {
			m.act.missed = append(m.act.missed, string(k))
		}
	}
	return v, found
}

// Iterator visits the keys in sorted order.
func (m *rowVal) Iterator() traits.Iterator {
	return types.NewStringList(types.DefaultTypeAdapter, slices.Sorted(maps.Keys(m.m))).Iterator()
}

// adapter converts cdc values to CEL values:
//
//	bool -> bool; int16, int32, int64 -> int; float32, float64 -> double;
//	Decimal -> string (exact; double(x) for arithmetic); string, enum,
//	uuid, timetz -> string; []byte -> bytes; date, timestamp(tz) ->
//	google.protobuf.Timestamp; Infinity -> string "infinity"/"-infinity";
//	time of day (time.Duration) -> google.protobuf.Duration; Interval ->
//	map {months, days, micros}; JSON -> the parsed document (map, list,
//	string, int or double, bool, null); arrays -> list; NULL -> null.
type adapter struct{}

func (a adapter) NativeToValue(v any) ref.Val {
	switch x := v.(type) {
	case nil:
		return types.NullValue
	case ref.Val:
		return x
	case bool:
		return types.Bool(x)
	case int16:
		return types.Int(x)
	case int32:
		return types.Int(x)
	case int64:
		return types.Int(x)
	case int:
		return types.Int(x)
	case float32:
		return types.Double(x)
	case float64:
		return types.Double(x)
	case cdc.Decimal:
		return types.String(x)
	case string:
		return types.String(x)
	case []byte:
		return types.Bytes(x)
	case time.Time:
		return types.Timestamp{Time: x}
	case time.Duration:
		return types.Duration{Duration: x}
	case cdc.Infinity:
		return types.String(x.String())
	case cdc.Interval:
		return a.NativeToValue(map[string]any{"months": int64(x.Months), "days": int64(x.Days), "micros": x.Micros})
	case cdc.JSON:
		d := json.NewDecoder(strings.NewReader(string(x)))
		d.UseNumber()
		var doc any
		if err := d.Decode(&doc); err != nil {
			return types.NewErr("json value: %v", err)
		}
		return a.NativeToValue(doc)
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return types.Int(n)
		}
		f, err := x.Float64()
		if err != nil {
			return types.NewErr("json number %s: %v", x, err)
		}
		return types.Double(f)
	case []any:
		return types.NewDynamicList(a, x)
	case map[string]any:
		return &rowVal{Mapper: types.NewStringInterfaceMap(a, x), m: x}
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

// maxDepth bounds the nesting of CEL values converted back to Go.
const maxDepth = 100

// fromCEL converts a CEL result to a Go value: null -> nil, bool, int ->
// int64, uint -> uint64, double -> float64, string, bytes -> []byte,
// timestamp -> time.Time, duration -> time.Duration, list -> []any, map ->
// map[string]any, an optional -> its value or nil.
func fromCEL(v ref.Val) (any, error) { return fromCELDepth(v, 0) }

func fromCELDepth(v ref.Val, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("value nested too deeply")
	}
	switch x := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(x), nil
	case types.Int:
		return int64(x), nil
	case types.Uint:
		return uint64(x), nil
	case types.Double:
		return float64(x), nil
	case types.String:
		return string(x), nil
	case types.Bytes:
		return []byte(x), nil
	case types.Timestamp:
		return x.Time.UTC(), nil
	case types.Duration:
		return x.Duration, nil
	case *types.Err:
		return nil, x
	case *types.Optional:
		if !x.HasValue() {
			return nil, nil
		}
		return fromCELDepth(x.GetValue(), depth+1)
	case traits.Mapper:
		out := map[string]any{}
		for it := x.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map key %v: want a string", k)
			}
			e, err := fromCELDepth(x.Get(k), depth+1)
			if err != nil {
				return nil, err
			}
			out[string(ks)] = e
		}
		return out, nil
	case traits.Lister:
		var out []any
		for it := x.Iterator(); it.HasNext() == types.True; {
			e, err := fromCELDepth(it.Next(), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported result type %s", v.Type())
}

// staticKind is the kind a CEL type maps to; KindUnknown for dyn, null
// and types without one.
func staticKind(t *cel.Type) (kind, elem cdc.Kind) {
	switch t.Kind() {
	case types.BoolKind:
		return cdc.KindBool, 0
	case types.IntKind, types.UintKind:
		return cdc.KindInt64, 0
	case types.DoubleKind:
		return cdc.KindFloat64, 0
	case types.StringKind:
		return cdc.KindString, 0
	case types.BytesKind:
		return cdc.KindBytes, 0
	case types.TimestampKind:
		return cdc.KindTimestampTZ, 0
	case types.DurationKind:
		return cdc.KindInterval, 0
	case types.MapKind:
		return cdc.KindJSON, 0
	case types.ListKind:
		if e, _ := staticKind(t.Parameters()[0]); e != cdc.KindUnknown && e != cdc.KindJSON {
			return cdc.KindArray, e
		}
		return cdc.KindJSON, 0
	case types.OpaqueKind:
		if t.TypeName() == "optional_type" && len(t.Parameters()) == 1 {
			return staticKind(t.Parameters()[0])
		}
	}
	return cdc.KindUnknown, 0
}
