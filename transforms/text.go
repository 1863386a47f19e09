package transforms

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// text is the canonical text of a value: what map_values looks up, what
// uuid5 and hash digest, and what a cast to string gives. kind, when
// known, tells dates and times of day from timestamps and durations.
func text(v any, kind cdc.Kind) string {
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		return strconv.FormatBool(x)
	case int16:
		return strconv.FormatInt(int64(x), 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float32:
		return floatText(float64(x), 32)
	case float64:
		return floatText(x, 64)
	case cdc.Decimal:
		return string(x)
	case string:
		return x
	case []byte:
		return `\x` + hex.EncodeToString(x)
	case time.Time:
		if kind == cdc.KindDate {
			return x.UTC().Format("2006-01-02")
		}
		return x.UTC().Format(time.RFC3339Nano)
	case time.Duration:
		if kind == cdc.KindTime {
			t := time.Time{}.Add(x)
			return t.Format("15:04:05.999999")
		}
		return x.String()
	case cdc.Interval:
		return fmt.Sprintf("P%dM%dDT%sS", x.Months, x.Days,
			strconv.FormatFloat(float64(x.Micros)/1e6, 'f', -1, 64))
	case cdc.Infinity:
		return x.String()
	case cdc.JSON:
		return string(x)
	case json.Number:
		return string(x)
	case []any, map[string]any:
		j, err := jsonValue(x)
		if err == nil {
			if b, err := json.Marshal(j); err == nil {
				return string(b)
			}
		}
	}
	return fmt.Sprint(v)
}

// floatText writes a float as PostgreSQL does: the shortest exact form,
// in exponent notation below 1e-4 and from 1e15.
func floatText(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if a := math.Abs(f); a != 0 && (a < 1e-4 || a >= 1e15) {
		return strconv.FormatFloat(f, 'e', -1, bits)
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// describe names a value for an error message, without printing much of
// it.
func describe(v any) string {
	s := text(v, cdc.KindUnknown)
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return fmt.Sprintf("%s %q", goKind(v), s)
}

// goKind names the cdc kind a Go value has.
func goKind(v any) string {
	switch v.(type) {
	case bool:
		return "bool"
	case int16, int32, int64, int, uint64:
		return "integer"
	case float32, float64:
		return "float"
	case cdc.Decimal, json.Number:
		return "decimal"
	case string:
		return "string"
	case []byte:
		return "bytes"
	case time.Time, cdc.Infinity:
		return "timestamp"
	case time.Duration:
		return "duration"
	case cdc.Interval:
		return "interval"
	case cdc.JSON, map[string]any:
		return "json"
	case []any:
		return "list"
	}
	return fmt.Sprintf("%T", v)
}

func typeName(kind, elem cdc.Kind) string {
	if kind == cdc.KindArray {
		return elem.String() + "[]"
	}
	return kind.String()
}
