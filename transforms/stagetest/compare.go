package stagetest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/transforms"
)

// compare lists how got differs from want.
func compare(want []Expected, got []cdc.Record) []string {
	if len(want) != len(got) {
		return []string{fmt.Sprintf("want %d record(s), got %d", len(want), len(got))}
	}
	var probs []string
	for i, e := range want {
		g := got[i]
		at := fmt.Sprintf("record[%d]", i)
		if e.Op != nil && *e.Op != g.Op {
			probs = append(probs, fmt.Sprintf("%s.op: want %s, got %s", at, *e.Op, g.Op))
		}
		if e.Table != nil && *e.Table != g.Table {
			probs = append(probs, fmt.Sprintf("%s.table: want %s, got %s", at, *e.Table, g.Table))
		}
		for _, name := range []string{"key", "before", "after"} {
			n, given := e.Rows[name]
			if !given {
				continue
			}
			actual := map[string]cdc.Row{"key": g.Key, "before": g.Before, "after": g.After}[name]
			switch {
			case n == nil && actual != nil:
				probs = append(probs, fmt.Sprintf("%s.%s: want null, got %s", at, name, renderRow(actual, nil)))
			case n != nil && actual == nil:
				probs = append(probs, fmt.Sprintf("%s.%s: want a row, got null", at, name))
			case n != nil:
				probs = append(probs, compareRow(at+"."+name, n, actual)...)
			}
		}
	}
	return probs
}

// compareRow compares a row with the expected mapping: the same fields,
// with matching values.
func compareRow(at string, want *yaml.Node, got cdc.Row) []string {
	var probs []string
	seen := map[string]bool{}
	for i := 0; i+1 < len(want.Content); i += 2 {
		k, n := resolve(want.Content[i]).Value, resolve(want.Content[i+1])
		seen[k] = true
		v, ok := got[k]
		switch {
		case !ok:
			probs = append(probs, fmt.Sprintf("%s.%s: want %s, got no such field", at, k, renderNode(n)))
		case !match(n, v):
			probs = append(probs, fmt.Sprintf("%s.%s: want %s, got %s (%s)", at, k, renderNode(n), renderValue(v), goType(v)))
		}
	}
	var extra []string
	for k := range got {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		probs = append(probs, fmt.Sprintf("%s.%s: unexpected field (got %s)", at, k, renderValue(got[k])))
	}
	return probs
}

// match reports whether the expected node matches the actual value. A
// node with a type tag (!int32, !decimal, ...) must match in type and
// value; an untagged one is converted to the actual value's type, within
// its family: a YAML integer matches any number, a float a float or
// decimal, a string a string or a type YAML has no literal for (decimal,
// uuid, dates and times, bytes, intervals, JSON), a list an array, a
// mapping JSON.
func match(n *yaml.Node, actual any) bool {
	p := &parser{}
	want, err := p.value(n, 0)
	if err != nil {
		return false
	}
	if want == nil || actual == nil {
		return want == nil && actual == nil
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return reflect.TypeOf(want) == reflect.TypeOf(actual) && equal(want, actual)
	}
	kind, elem := goKind(actual)
	if !sameFamily(want, kind) {
		return false
	}
	conv, err := transforms.Convert(want, kind, elem)
	return err == nil && equal(conv, actual)
}

func sameFamily(want any, k cdc.Kind) bool {
	switch want.(type) {
	case int64:
		return k == cdc.KindInt16 || k == cdc.KindInt32 || k == cdc.KindInt64 ||
			k == cdc.KindFloat32 || k == cdc.KindFloat64 || k == cdc.KindDecimal
	case float64:
		return k == cdc.KindFloat32 || k == cdc.KindFloat64 || k == cdc.KindDecimal
	case bool:
		return k == cdc.KindBool
	case []any:
		return k == cdc.KindArray
	case cdc.JSON:
		return k == cdc.KindJSON
	case time.Time:
		return k == cdc.KindTimestampTZ || k == cdc.KindDate
	case []byte:
		return k == cdc.KindBytes
	case cdc.Decimal: // an integer too large for int64
		return k == cdc.KindDecimal
	case string:
		return k != cdc.KindBool && k != cdc.KindInt16 && k != cdc.KindInt32 && k != cdc.KindInt64 &&
			k != cdc.KindFloat32 && k != cdc.KindFloat64 && k != cdc.KindArray
	}
	return false
}

// goKind is the kind of a cdc value's Go type (dates and timestamps are
// both time.Time: timestamptz).
func goKind(v any) (cdc.Kind, cdc.Kind) {
	switch x := v.(type) {
	case bool:
		return cdc.KindBool, 0
	case int16:
		return cdc.KindInt16, 0
	case int32:
		return cdc.KindInt32, 0
	case int64:
		return cdc.KindInt64, 0
	case float32:
		return cdc.KindFloat32, 0
	case float64:
		return cdc.KindFloat64, 0
	case cdc.Decimal:
		return cdc.KindDecimal, 0
	case string:
		return cdc.KindString, 0
	case []byte:
		return cdc.KindBytes, 0
	case time.Time, cdc.Infinity:
		return cdc.KindTimestampTZ, 0
	case time.Duration:
		return cdc.KindTime, 0
	case cdc.Interval:
		return cdc.KindInterval, 0
	case cdc.JSON:
		return cdc.KindJSON, 0
	case []any:
		for _, e := range x {
			if e != nil {
				if k, _ := goKind(e); k != cdc.KindArray {
					return cdc.KindArray, k
				}
			}
		}
		return cdc.KindArray, cdc.KindString
	}
	return cdc.KindUnknown, 0
}

// equal compares two values of the same Go type: decimals by value,
// JSON by content, NaN equal to NaN.
func equal(a, b any) bool {
	switch x := a.(type) {
	case cdc.Decimal:
		y, ok := b.(cdc.Decimal)
		if !ok {
			return false
		}
		rx, okx := new(big.Rat).SetString(string(x))
		ry, oky := new(big.Rat).SetString(string(y))
		if okx && oky {
			return rx.Cmp(ry) == 0
		}
		return x == y
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.IsNaN(x) && math.IsNaN(y))
	case float32:
		y, ok := b.(float32)
		return ok && (x == y || x != x && y != y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case cdc.JSON:
		y, ok := b.(cdc.JSON)
		if !ok {
			return false
		}
		var dx, dy any
		if json.Unmarshal([]byte(x), &dx) != nil || json.Unmarshal([]byte(y), &dy) != nil {
			return x == y
		}
		return reflect.DeepEqual(dx, dy)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if (x[i] == nil) != (y[i] == nil) || x[i] != nil && !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// render writes a record on one line, YAML-like.
func render(r cdc.Record) string {
	parts := []string{"op: " + r.Op.String(), "table: " + r.Table.String()}
	if r.Key != nil {
		parts = append(parts, "key: "+renderRow(r.Key, r.Schema))
	}
	if r.Before != nil {
		parts = append(parts, "before: "+renderRow(r.Before, r.Schema))
	}
	if r.After != nil {
		parts = append(parts, "after: "+renderRow(r.After, r.Schema))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// renderRow writes a row's fields in schema order, the rest sorted.
func renderRow(row cdc.Row, s *cdc.TableSchema) string {
	var names []string
	if s != nil {
		for _, c := range s.Columns {
			if _, ok := row[c.Name]; ok {
				names = append(names, c.Name)
			}
		}
	}
	var rest []string
	for k := range row {
		if !slices.Contains(names, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	names = append(names, rest...)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = renderKey(n) + ": " + renderValue(row[n])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func renderKey(k string) string {
	if k == "" || strings.ContainsAny(k, ":{}[],#&*!|>'\"%@` ") {
		return strconv.Quote(k)
	}
	return k
}

func renderValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case cdc.Decimal:
		return string(x)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []byte:
		return "!!binary " + base64.StdEncoding.EncodeToString(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case cdc.JSON:
		return "'" + strings.ReplaceAll(string(x), "'", "''") + "'"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = renderValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case cdc.Interval:
		return fmt.Sprintf("{months: %d, days: %d, micros: %d}", x.Months, x.Days, x.Micros)
	}
	return fmt.Sprint(v)
}

// renderNode writes an expected value as the test gives it.
func renderNode(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		s := n.Value
		if n.ShortTag() == "!!str" {
			s = strconv.Quote(s)
		}
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			s = n.Tag + " " + s
		}
		return s
	}
	out, err := yaml.Marshal(n)
	if err != nil {
		return "?"
	}
	var flow yaml.Node
	if yaml.Unmarshal(out, &flow) == nil && len(flow.Content) == 1 {
		setFlow(flow.Content[0])
		if b, err := yaml.Marshal(flow.Content[0]); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return strings.TrimSpace(string(out))
}

func setFlow(n *yaml.Node) {
	n.Style |= yaml.FlowStyle
	for _, c := range n.Content {
		setFlow(c)
	}
}

// goType names a value's type for a diff line.
func goType(v any) string {
	k, e := goKind(v)
	switch {
	case k == cdc.KindArray:
		return e.String() + "[]"
	case k == cdc.KindUnknown:
		return fmt.Sprintf("%T", v)
	case k == cdc.KindTimestampTZ:
		return "timestamp"
	}
	return k.String()
}
