package debezium

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Infinite dates and timestamps have no Debezium encoding of their own. This
// codec reserves the extreme values of the integer encodings for them and the
// strings "infinity" and "-infinity" for the string encodings:
//
//	date (io.debezium.time.Date, int32 days):            math.MaxInt32 / math.MinInt32
//	timestamp (io.debezium.time.MicroTimestamp, int64 µs): math.MaxInt64 / math.MinInt64
//	timestamptz (io.debezium.time.ZonedTimestamp):        "infinity" / "-infinity"
//
// PostgreSQL dates never reach the int32 extremes. The int64 extremes are
// 294247-01-10T04:00:54.775807Z and its negative, which PostgreSQL can store
// but which this codec then refuses rather than misread.
const (
	dateInfinity = math.MaxInt32
	dateNegInf   = math.MinInt32
	tsInfinity   = math.MaxInt64
	tsNegInf     = math.MinInt64
)

const (
	secondsPerDay = 86400
	microsPerSec  = 1_000_000
	microsPerMin  = 60 * microsPerSec
	microsPerHour = 60 * microsPerMin
)

func infinitySign(i cdc.Infinity) int {
	if i.Sign < 0 {
		return -1
	}
	return 1
}

// epochDays returns the days since 1970-01-01 of a date value.
func epochDays(v any) (int32, error) {
	switch x := v.(type) {
	case cdc.Infinity:
		if infinitySign(x) < 0 {
			return dateNegInf, nil
		}
		return dateInfinity, nil
	case time.Time:
		x = x.UTC()
		if x.Hour() != 0 || x.Minute() != 0 || x.Second() != 0 || x.Nanosecond() != 0 {
			return 0, fmt.Errorf("date %s is not at midnight UTC", x.Format(time.RFC3339Nano))
		}
		d := x.Unix() / secondsPerDay // exact: midnight
		if d >= dateInfinity || d <= dateNegInf {
			return 0, fmt.Errorf("date %s out of range", x.Format(time.DateOnly))
		}
		return int32(d), nil
	}
	return 0, typeError(cdc.KindDate, v)
}

// dateFromDays is the inverse of epochDays.
func dateFromDays(d int64) (any, error) {
	switch {
	case d == dateInfinity:
		return cdc.Infinity{Sign: 1}, nil
	case d == dateNegInf:
		return cdc.Infinity{Sign: -1}, nil
	case d > dateInfinity || d < dateNegInf:
		return nil, fmt.Errorf("date %d out of int32 range", d)
	}
	return time.Unix(d*secondsPerDay, 0).UTC(), nil
}

// epochMicros returns the microseconds since the Unix epoch of a timestamp.
func epochMicros(v any) (int64, error) {
	switch x := v.(type) {
	case cdc.Infinity:
		if infinitySign(x) < 0 {
			return tsNegInf, nil
		}
		return tsInfinity, nil
	case time.Time:
		return timeMicros(x)
	}
	return 0, typeError(cdc.KindTimestamp, v)
}

func timeMicros(t time.Time) (int64, error) {
	if t.Nanosecond()%1000 != 0 {
		return 0, fmt.Errorf("timestamp %s has sub-microsecond precision", t.Format(time.RFC3339Nano))
	}
	s := t.Unix()
	if s >= math.MaxInt64/microsPerSec-1 || s <= math.MinInt64/microsPerSec+1 {
		return 0, fmt.Errorf("timestamp %s out of range", t.Format(time.RFC3339Nano))
	}
	return s*microsPerSec + int64(t.Nanosecond()/1000), nil
}

// timestampFromMicros is the inverse of epochMicros.
func timestampFromMicros(us int64) (any, error) {
	switch us {
	case tsInfinity:
		return cdc.Infinity{Sign: 1}, nil
	case tsNegInf:
		return cdc.Infinity{Sign: -1}, nil
	}
	t := time.UnixMicro(us).UTC()
	if _, err := timeMicros(t); err != nil {
		return nil, err
	}
	return t, nil
}

// appendZoned appends a timestamptz as io.debezium.time.ZonedTimestamp: ISO
// 8601 in UTC with exactly six fractional digits, e.g.
// "2024-01-31T08:11:12.123456Z". Years outside 0000-9999 use ISO 8601's
// expanded form ("+10000-01-01T...", "-0044-03-15T..."; year 0 is 1 BC).
func appendZoned(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case cdc.Infinity:
		if infinitySign(x) < 0 {
			return append(b, `"-infinity"`...), nil
		}
		return append(b, `"infinity"`...), nil
	case time.Time:
		if x.Nanosecond()%1000 != 0 {
			return b, fmt.Errorf("timestamp %s has sub-microsecond precision", x.Format(time.RFC3339Nano))
		}
		x = x.UTC()
		b = append(b, '"')
		b = appendYear(b, x.Year())
		b = append(b, '-')
		b = appendPad(b, int64(x.Month()), 2)
		b = append(b, '-')
		b = appendPad(b, int64(x.Day()), 2)
		b = append(b, 'T')
		b = appendPad(b, int64(x.Hour()), 2)
		b = append(b, ':')
		b = appendPad(b, int64(x.Minute()), 2)
		b = append(b, ':')
		b = appendPad(b, int64(x.Second()), 2)
		b = append(b, '.')
		b = appendPad(b, int64(x.Nanosecond()/1000), 6)
		return append(b, 'Z', '"'), nil
	}
	return b, typeError(cdc.KindTimestampTZ, v)
}

func appendYear(b []byte, y int) []byte {
	switch {
	case y < 0:
		return appendPad(append(b, '-'), -int64(y), 4)
	case y > 9999:
		return strconv.AppendInt(append(b, '+'), int64(y), 10)
	}
	return appendPad(b, int64(y), 4)
}

// appendPad appends a non-negative n with at least width digits.
func appendPad(b []byte, n int64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], n, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

var errZoned = errors.New("want ISO 8601 timestamp like 2024-01-31T08:11:12.123456Z, or infinity")

// parseZoned is the inverse of appendZoned. It accepts any zone offset
// ("Z", "+02:00") and at most six fractional digits.
func parseZoned(s string) (any, error) {
	switch s {
	case "infinity":
		return cdc.Infinity{Sign: 1}, nil
	case "-infinity":
		return cdc.Infinity{Sign: -1}, nil
	}
	p := scanner{s: s}
	neg := p.accept('-')
	if !neg {
		p.accept('+')
	}
	year, ok := p.digits(4, 9)
	if !ok || !p.accept('-') {
		return nil, fmt.Errorf("timestamp %q: %w", s, errZoned)
	}
	if neg {
		year = -year
	}
	month, ok1 := p.digits(2, 2)
	ok2 := p.accept('-')
	day, ok3 := p.digits(2, 2)
	ok4 := p.accept('T')
	hour, ok5 := p.digits(2, 2)
	ok6 := p.accept(':')
	minute, ok7 := p.digits(2, 2)
	ok8 := p.accept(':')
	sec, ok9 := p.digits(2, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok8 && ok9) {
		return nil, fmt.Errorf("timestamp %q: %w", s, errZoned)
	}
	var micros int64
	if p.accept('.') {
		f, ok := p.fraction(6)
		if !ok {
			return nil, fmt.Errorf("timestamp %q: fraction: %w", s, errZoned)
		}
		micros = f
	}
	var offset int64
	switch {
	case p.accept('Z'):
	case p.peek('+') || p.peek('-'):
		sign := int64(1)
		if p.accept('-') {
			sign = -1
		} else {
			p.accept('+')
		}
		oh, ok1 := p.digits(2, 2)
		ok2 := p.accept(':')
		om, ok3 := p.digits(2, 2)
		if !(ok1 && ok2 && ok3) || oh > 23 || om > 59 {
			return nil, fmt.Errorf("timestamp %q: offset: %w", s, errZoned)
		}
		offset = sign * (oh*3600 + om*60)
	default:
		return nil, fmt.Errorf("timestamp %q: missing zone: %w", s, errZoned)
	}
	if !p.done() || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 ||
		day > int64(daysIn(time.Month(month), int(year))) {
		return nil, fmt.Errorf("timestamp %q: %w", s, errZoned)
	}
	t := time.Date(int(year), time.Month(month), int(day), int(hour), int(minute), int(sec),
		int(micros)*1000, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second).UTC(), nil
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
