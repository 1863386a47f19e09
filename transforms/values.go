package transforms

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// The conversion rules of cast, and of every stage that writes a value of
// a given type (docs/stages.md, "Type conversions"). convert never rounds
// or truncates a number silently: a value that does not fit, or has a
// fraction where an integer is wanted, is an error. NULL stays NULL.

// convert returns v as the Go type that cdc documents for kind (elem: the
// element kind of an array).
func convert(v any, kind, elem cdc.Kind) (any, error) {
	if v == nil {
		return nil, nil
	}
	out, err := convertKind(v, kind, elem)
	if err != nil {
		return nil, fmt.Errorf("cannot convert %s to %s: %w", describe(v), typeName(kind, elem), err)
	}
	return out, nil
}

func convertKind(v any, kind, elem cdc.Kind) (any, error) {
	switch kind {
	case cdc.KindBool:
		return toBool(v)
	case cdc.KindInt16:
		n, err := toInt(v, 16)
		return int16(n), err
	case cdc.KindInt32:
		n, err := toInt(v, 32)
		return int32(n), err
	case cdc.KindInt64:
		return toInt(v, 64)
	case cdc.KindFloat32:
		f, err := toFloat(v, 32)
		return float32(f), err
	case cdc.KindFloat64:
		return toFloat(v, 64)
	case cdc.KindDecimal:
		return toDecimal(v)
	case cdc.KindString, cdc.KindEnum, cdc.KindTimeTZ:
		if b, ok := v.([]byte); ok {
			if !utf8.Valid(b) {
				return nil, errors.New("not UTF-8 text")
			}
			return string(b), nil
		}
		return text(v, cdc.KindUnknown), nil
	case cdc.KindBytes:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case cdc.KindDate, cdc.KindTimestamp, cdc.KindTimestampTZ:
		return toTime(v, kind == cdc.KindDate)
	case cdc.KindTime:
		return toClock(v)
	case cdc.KindInterval:
		return toInterval(v)
	case cdc.KindUUID:
		return toUUID(v)
	case cdc.KindJSON:
		return toJSON(v)
	case cdc.KindArray:
		return toArray(v, elem)
	}
	return nil, errors.New("no conversion")
}

// timeLayouts are the texts a date or timestamp is parsed from; without a
// zone, UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

func toTime(v any, date bool) (any, error) {
	var t time.Time
	switch x := v.(type) {
	case cdc.Infinity:
		return x, nil
	case time.Time:
		t = x
	case string:
		s := strings.TrimSpace(x)
		switch strings.ToLower(s) {
		case "infinity", "+infinity":
			return cdc.Infinity{Sign: 1}, nil
		case "-infinity":
			return cdc.Infinity{Sign: -1}, nil
		}
		ok := false
		for _, l := range timeLayouts {
			var err error
			if t, err = time.Parse(l, s); err == nil {
				ok = true
				break
			}
		}
		if !ok {
			return nil, errors.New("want an ISO 8601 date or timestamp such as 2024-01-31T10:11:12Z")
		}
	default:
		return nil, errors.New("no conversion")
	}
	t = t.UTC()
	if date {
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), nil
	}
	return t.Truncate(time.Microsecond), nil
}

// toClock converts to a time of day: a duration of 0 to 24h, or text
// HH:MM[:SS[.ffffff]].
func toClock(v any) (any, error) {
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case string:
		t, err := time.Parse("15:04:05.999999999", strings.TrimSpace(x))
		if err != nil {
			if t, err = time.Parse("15:04", strings.TrimSpace(x)); err != nil {
				return nil, errors.New("want HH:MM:SS")
			}
		}
		d = time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
			time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond())
	default:
		return nil, errors.New("no conversion")
	}
	if d < 0 || d > 24*time.Hour {
		return nil, errors.New("out of range")
	}
	return d.Truncate(time.Microsecond), nil
}

func toInterval(v any) (any, error) {
	switch x := v.(type) {
	case cdc.Interval:
		return x, nil
	case time.Duration:
		return cdc.Interval{Micros: int64(x / time.Microsecond)}, nil
	case map[string]any:
		var iv cdc.Interval
		for k, f := range x {
			n, err := toInt(f, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			switch k {
			case "months":
				m, err := toInt(n, 32)
				if err != nil {
					return nil, err
				}
				iv.Months = int32(m)
			case "days":
				d, err := toInt(n, 32)
				if err != nil {
					return nil, err
				}
				iv.Days = int32(d)
			case "micros":
				iv.Micros = n
			default:
				return nil, fmt.Errorf("unknown part %q (want months, days, micros)", k)
			}
		}
		return iv, nil
	}
	return nil, errors.New("no conversion")
}

func toUUID(v any) (any, error) {
	switch x := v.(type) {
	case string:
		s := strings.TrimSpace(x)
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			s = s[1 : len(s)-1]
		}
		hexText := strings.ReplaceAll(s, "-", "")
		b, err := hex.DecodeString(hexText)
		if err != nil || len(b) != 16 || (len(s) != 32 && len(s) != 36) ||
			(len(s) == 36 && (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')) {
			return nil, errors.New("want 8-4-4-4-12 hex digits")
		}
		return formatUUID(b), nil
	case []byte:
		if len(x) != 16 {
			return nil, errors.New("want 16 bytes")
		}
		return formatUUID(x), nil
	}
	return nil, errors.New("no conversion")
}

func formatUUID(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// toJSON converts to a JSON document: text is parsed as a document,
// anything else becomes the document of its value.
func toJSON(v any) (any, error) {
	var s string
	switch x := v.(type) {
	case cdc.JSON:
		return x, nil
	case string:
		s = x
	case []byte:
		s = string(x)
	default:
		j, err := jsonValue(v)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(j)
		if err != nil {
			return nil, err
		}
		return cdc.JSON(b), nil
	}
	if !json.Valid([]byte(s)) {
		return nil, errors.New("not a JSON document")
	}
	return cdc.JSON(s), nil
}

// jsonValue returns v as a value encoding/json writes the way Sluice
// wants: decimals as numbers, timestamps in RFC 3339, JSON as itself.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, int16, int32, int64, int, uint64, string, []byte:
		return x, nil
	case float32:
		return jsonValue(float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("JSON has no NaN or infinity")
		}
		return x, nil
	case cdc.Decimal:
		if _, ok := parseDecimal(string(x)); ok {
			return json.Number(x), nil
		}
		return string(x), nil
	case cdc.JSON:
		if !json.Valid([]byte(x)) {
			return nil, errors.New("not a JSON document")
		}
		return json.RawMessage(x), nil
	case json.Number:
		return x, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[k] = j
		}
		return out, nil
	}
	return text(v, cdc.KindUnknown), nil
}

func toArray(v any, elem cdc.Kind) (any, error) {
	var xs []any
	switch x := v.(type) {
	case []any:
		xs = x
	case cdc.JSON, string:
		if err := json.Unmarshal([]byte(fmt.Sprint(x)), &xs); err != nil {
			return nil, errors.New("not a JSON array")
		}
	default:
		return nil, errors.New("no conversion")
	}
	out := make([]any, len(xs))
	for i, e := range xs {
		var err error
		if sub, ok := e.([]any); ok {
			out[i], err = toArray(sub, elem)
		} else {
			out[i], err = convert(e, elem, cdc.KindUnknown)
		}
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
	}
	return out, nil
}

// Convert converts v, a value of any cdc kind (or text, or a plain Go
// int64, float64, bool, []any or map[string]any), to the Go type cdc
// documents for kind, by the rules of the cast stage (docs/stages.md).
// elem is the element kind of an array.
func Convert(v any, kind, elem cdc.Kind) (any, error) { return convert(v, kind, elem) }
