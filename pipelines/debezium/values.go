package debezium

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

func typeError(k cdc.Kind, v any) error {
	return fmt.Errorf("%s column holds %T", k, v)
}

// appendValue appends the JSON form of v, a value of a column of kind k
// (elem is the element kind of arrays). The Go type of v must be the one
// documented on cdc.Kind.
func appendValue(b []byte, k, elem cdc.Kind, v any) ([]byte, error) {
	if v == nil {
		return append(b, "null"...), nil
	}
	switch k {
	case cdc.KindBool:
		if x, ok := v.(bool); ok {
			return strconv.AppendBool(b, x), nil
		}
	case cdc.KindInt16:
		if x, ok := v.(int16); ok {
			return strconv.AppendInt(b, int64(x), 10), nil
		}
	case cdc.KindInt32:
		if x, ok := v.(int32); ok {
			return strconv.AppendInt(b, int64(x), 10), nil
		}
	case cdc.KindInt64:
		if x, ok := v.(int64); ok {
			return strconv.AppendInt(b, x, 10), nil
		}
	case cdc.KindFloat32:
		if x, ok := v.(float32); ok {
			return appendFloat(b, float64(x), 32), nil
		}
	case cdc.KindFloat64:
		if x, ok := v.(float64); ok {
			return appendFloat(b, x, 64), nil
		}
	case cdc.KindDecimal:
		if x, ok := v.(cdc.Decimal); ok {
			return appendString(b, string(x))
		}
	case cdc.KindString, cdc.KindEnum, cdc.KindUUID, cdc.KindTimeTZ:
		if x, ok := v.(string); ok {
			return appendString(b, x)
		}
	case cdc.KindJSON:
		if x, ok := v.(cdc.JSON); ok {
			return appendString(b, string(x))
		}
	case cdc.KindBytes:
		if x, ok := v.([]byte); ok {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, x)
			return append(b, '"'), nil
		}
	case cdc.KindDate:
		d, err := epochDays(v)
		return strconv.AppendInt(b, int64(d), 10), err
	case cdc.KindTime:
		if x, ok := v.(time.Duration); ok {
			if x%time.Microsecond != 0 {
				return b, fmt.Errorf("time %s has sub-microsecond precision", x)
			}
			return strconv.AppendInt(b, int64(x/time.Microsecond), 10), nil
		}
	case cdc.KindTimestamp:
		us, err := epochMicros(v)
		return strconv.AppendInt(b, us, 10), err
	case cdc.KindTimestampTZ:
		return appendZoned(b, v)
	case cdc.KindInterval:
		if x, ok := v.(cdc.Interval); ok {
			b = append(b, '"')
			b = appendIntervalText(b, x)
			return append(b, '"'), nil
		}
	case cdc.KindArray:
		if x, ok := v.([]any); ok {
			return appendArray(b, elem, x)
		}
	default:
		return b, fmt.Errorf("cannot encode a value of kind %s", k)
	}
	return b, typeError(k, v)
}

func appendArray(b []byte, elem cdc.Kind, xs []any) ([]byte, error) {
	b = append(b, '[')
	var err error
	for i, e := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		if sub, ok := e.([]any); ok {
			b, err = appendArray(b, elem, sub)
		} else {
			b, err = appendValue(b, elem, cdc.KindUnknown, e)
		}
		if err != nil {
			return b, fmt.Errorf("element %d: %w", i, err)
		}
	}
	return append(b, ']'), nil
}

// appendFloat appends f as a JSON number, or as the strings "NaN",
// "Infinity" and "-Infinity" that JSON numbers cannot express.
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

var jsonNull = []byte("null")

// decodeValue is the inverse of appendValue. raw must be valid JSON (it comes
// out of encoding/json).
func decodeValue(k, elem cdc.Kind, raw json.RawMessage) (any, error) {
	if bytes.Equal(raw, jsonNull) {
		return nil, nil
	}
	switch k {
	case cdc.KindBool:
		var x bool
		return x, json.Unmarshal(raw, &x)
	case cdc.KindInt16:
		n, err := strconv.ParseInt(string(raw), 10, 16)
		return int16(n), err
	case cdc.KindInt32:
		n, err := strconv.ParseInt(string(raw), 10, 32)
		return int32(n), err
	case cdc.KindInt64:
		return strconv.ParseInt(string(raw), 10, 64)
	case cdc.KindFloat32:
		f, err := decodeFloat(raw, 32)
		return float32(f), err
	case cdc.KindFloat64:
		return decodeFloat(raw, 64)
	case cdc.KindDate:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, err
		}
		return dateFromDays(n)
	case cdc.KindTime:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, err
		}
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			return nil, fmt.Errorf("time %d µs out of range", n)
		}
		return time.Duration(n) * time.Microsecond, nil
	case cdc.KindTimestamp:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, err
		}
		return timestampFromMicros(n)
	case cdc.KindArray:
		var xs []json.RawMessage
		if err := json.Unmarshal(raw, &xs); err != nil {
			return nil, err
		}
		return decodeArray(elem, xs)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return decodeString(k, s)
}

// decodeString decodes the kinds that JSON carries as strings.
func decodeString(k cdc.Kind, s string) (any, error) {
	switch k {
	case cdc.KindDecimal:
		return cdc.Decimal(s), nil
	case cdc.KindString, cdc.KindEnum, cdc.KindUUID, cdc.KindTimeTZ:
		return s, nil
	case cdc.KindJSON:
		return cdc.JSON(s), nil
	case cdc.KindBytes:
		return base64.StdEncoding.DecodeString(s)
	case cdc.KindTimestampTZ:
		return parseZoned(s)
	case cdc.KindInterval:
		return parseInterval(s)
	}
	return nil, fmt.Errorf("cannot decode a value of kind %s", k)
}

func decodeArray(elem cdc.Kind, xs []json.RawMessage) ([]any, error) {
	out := make([]any, len(xs))
	for i, raw := range xs {
		var err error
		if len(raw) > 0 && raw[0] == '[' {
			var sub []json.RawMessage
			if err = json.Unmarshal(raw, &sub); err == nil {
				out[i], err = decodeArray(elem, sub)
			}
		} else {
			out[i], err = decodeValue(elem, cdc.KindUnknown, raw)
		}
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
	}
	return out, nil
}

func decodeFloat(raw json.RawMessage, bits int) (float64, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		switch s {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("float %q: want a number, NaN, Infinity or -Infinity", s)
	}
	return strconv.ParseFloat(string(raw), bits)
}
