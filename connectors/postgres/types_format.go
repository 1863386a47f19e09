package postgres

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// formatText is the inverse of parseText: it writes a Go value of col's
// kind as PostgreSQL text input, such that parseText(col, formatText(col,
// v)) gives v back. Dates and timestamps are ISO with " BC" for years before
// 1 AD, timestamptz in UTC ("+00"), intervals with a sign on every part
// (see formatIntervalText), bytea in hex, arrays with every element quoted.
// v must not be nil: NULL is the caller's business.
func formatText(col cdc.Column, v any) (string, error) {
	s, err := formatKind(col, v)
	if err != nil {
		return "", fmt.Errorf("format %s value: %w", col.Kind, err)
	}
	return s, nil
}

func formatKind(col cdc.Column, v any) (string, error) {
	switch col.Kind {
	case cdc.KindBool:
		if x, ok := v.(bool); ok {
			if x {
				return "t", nil
			}
			return "f", nil
		}
	case cdc.KindInt16:
		if x, ok := v.(int16); ok {
			return strconv.FormatInt(int64(x), 10), nil
		}
	case cdc.KindInt32:
		if x, ok := v.(int32); ok {
			return strconv.FormatInt(int64(x), 10), nil
		}
	case cdc.KindInt64:
		if x, ok := v.(int64); ok {
			return strconv.FormatInt(x, 10), nil
		}
	case cdc.KindFloat32:
		if x, ok := v.(float32); ok {
			return formatFloat(float64(x), 32), nil
		}
	case cdc.KindFloat64:
		if x, ok := v.(float64); ok {
			return formatFloat(x, 64), nil
		}
	case cdc.KindDecimal:
		if x, ok := v.(cdc.Decimal); ok {
			return string(x), nil
		}
	case cdc.KindString, cdc.KindEnum, cdc.KindTimeTZ, cdc.KindUUID:
		if x, ok := v.(string); ok {
			return x, nil
		}
	case cdc.KindJSON:
		if x, ok := v.(cdc.JSON); ok {
			return string(x), nil
		}
	case cdc.KindBytes:
		if x, ok := v.([]byte); ok {
			return `\x` + hex.EncodeToString(x), nil
		}
	case cdc.KindDate:
		return formatTemporal(v, false, false)
	case cdc.KindTime:
		if x, ok := v.(time.Duration); ok {
			if x < 0 || x > 24*time.Hour || x%time.Microsecond != 0 {
				return "", fmt.Errorf("time of day %s out of range or finer than microseconds", x)
			}
			return string(appendClock(nil, int64(x/time.Microsecond))), nil
		}
	case cdc.KindTimestamp:
		return formatTemporal(v, true, false)
	case cdc.KindTimestampTZ:
		return formatTemporal(v, true, true)
	case cdc.KindInterval:
		if x, ok := v.(cdc.Interval); ok {
			return formatIntervalText(x), nil
		}
	case cdc.KindArray:
		if x, ok := v.([]any); ok {
			return formatArray(col, x)
		}
	default:
		return "", fmt.Errorf("unsupported kind %s", col.Kind)
	}
	return "", fmt.Errorf("%s column holds %T", col.Kind, v)
}

func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// formatTemporal writes a date ("2024-01-31"), timestamp ("2024-01-31
// 10:11:12.123456") or timestamptz ("... +00"), with " BC" where needed, or
// infinity.
func formatTemporal(v any, clock, zone bool) (string, error) {
	b, err := appendTemporal(make([]byte, 0, 40), v, clock, zone)
	return string(b), err
}

// appendTemporal appends what formatTemporal returns to b.
func appendTemporal(b []byte, v any, clock, zone bool) ([]byte, error) {
	switch x := v.(type) {
	case cdc.Infinity:
		if x.Sign < 0 {
			return append(b, "-infinity"...), nil
		}
		return append(b, "infinity"...), nil
	case time.Time:
		x = x.UTC()
		us := int64(x.Hour())*microsPerHour + int64(x.Minute())*microsPerMinute +
			int64(x.Second())*microsPerSecond + int64(x.Nanosecond()/1000)
		if x.Nanosecond()%1000 != 0 || (!clock && us != 0) {
			return b, fmt.Errorf("%s has a finer precision than the column", x.Format(time.RFC3339Nano))
		}
		y, bc := x.Year(), false
		if y <= 0 {
			y, bc = 1-y, true
		}
		b = appendPadded(b, int64(y), 4)
		b = append(b, '-')
		b = appendPadded(b, int64(x.Month()), 2)
		b = append(b, '-')
		b = appendPadded(b, int64(x.Day()), 2)
		if clock {
			b = appendClock(append(b, ' '), us)
		}
		if zone {
			b = append(b, "+00"...)
		}
		if bc {
			b = append(b, " BC"...)
		}
		return b, nil
	}
	return b, fmt.Errorf("holds %T, want time.Time or cdc.Infinity", v)
}

// appendClock writes microseconds since midnight as HH:MM:SS[.ffffff].
func appendClock(b []byte, us int64) []byte {
	b = appendPadded(b, us/microsPerHour, 2)
	b = append(b, ':')
	b = appendPadded(b, us%microsPerHour/microsPerMinute, 2)
	b = append(b, ':')
	b = appendPadded(b, us%microsPerMinute/microsPerSecond, 2)
	if f := us % microsPerSecond; f != 0 {
		b = append(b, '.')
		b = appendPadded(b, f, 6)
	}
	return b
}
