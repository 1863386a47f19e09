package postgres

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// parseText converts a value in PostgreSQL's text output format into the Go
// type that cdc.Kind documents for col.Kind. It expects the session settings
// the source sets (see sessionParams): DateStyle ISO, IntervalStyle
// postgres ("1 year 2 mons 3 days 04:05:06.000007", "-1 days +02:00:00"),
// bytea_output hex (escape format is read too). Timestamps with time zone
// may carry any offset; the result is in UTC. NULL is the caller's
// business: text is never NULL here.
func parseText(col cdc.Column, text []byte) (any, error) {
	v, err := parseKind(col, string(text))
	if err != nil {
		return nil, fmt.Errorf("parse %s value %q: %w", col.SourceType, truncate(text), err)
	}
	return v, nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

func parseKind(col cdc.Column, s string) (any, error) {
	switch col.Kind {
	case cdc.KindBool:
		switch s {
		case "t", "true":
			return true, nil
		case "f", "false":
			return false, nil
		}
		return nil, errors.New("want t or f")
	case cdc.KindInt16:
		n, err := strconv.ParseInt(s, 10, 16)
		return int16(n), err
	case cdc.KindInt32:
		n, err := strconv.ParseInt(s, 10, 32)
		return int32(n), err
	case cdc.KindInt64:
		return strconv.ParseInt(s, 10, 64)
	case cdc.KindFloat32:
		f, err := parseFloat(s, 32)
		return float32(f), err
	case cdc.KindFloat64:
		return parseFloat(s, 64)
	case cdc.KindDecimal:
		if !validDecimal(s) {
			return nil, errors.New("not a numeric")
		}
		return cdc.Decimal(s), nil
	case cdc.KindString, cdc.KindEnum, cdc.KindTimeTZ:
		return s, nil
	case cdc.KindUUID:
		return parseUUID(s)
	case cdc.KindJSON:
		return cdc.JSON(s), nil
	case cdc.KindBytes:
		return parseBytea(s)
	case cdc.KindDate:
		return parseDate(s)
	case cdc.KindTime:
		us, err := parseClock(s)
		return time.Duration(us) * time.Microsecond, err
	case cdc.KindTimestamp:
		return parseTimestamp(s, false)
	case cdc.KindTimestampTZ:
		return parseTimestamp(s, true)
	case cdc.KindInterval:
		return parseInterval(s)
	case cdc.KindArray:
		return parseArray(col, s)
	}
	return nil, fmt.Errorf("unsupported kind %s", col.Kind)
}

func parseFloat(s string, bits int) (float64, error) {
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "Infinity":
		return math.Inf(1), nil
	case "-Infinity":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(s, bits)
}

// validDecimal accepts numeric's output: [-]digits[.digits], NaN, ±Infinity.
func validDecimal(s string) bool {
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return true
	}
	s = strings.TrimPrefix(s, "-")
	intPart, frac, hasDot := strings.Cut(s, ".")
	return allDigits(intPart) && intPart != "" && (!hasDot || (frac != "" && allDigits(frac)))
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseUUID checks the canonical 8-4-4-4-12 form and lower-cases it.
func parseUUID(s string) (string, error) {
	if len(s) != 36 {
		return "", errors.New("want 8-4-4-4-12 hex digits")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		dash := i == 8 || i == 13 || i == 18 || i == 23
		if dash != (c == '-') || (!dash && !isHex(c)) {
			return "", errors.New("want 8-4-4-4-12 hex digits")
		}
	}
	return strings.ToLower(s), nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// parseBytea reads hex ("\x01ff") or escape ("a\\\001") format.
func parseBytea(s string) ([]byte, error) {
	if h, ok := strings.CutPrefix(s, `\x`); ok {
		return hex.DecodeString(h)
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			out = append(out, '\\')
			i++
		case i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3':
			out = append(out, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
		default:
			return nil, errors.New("invalid bytea escape")
		}
	}
	return out, nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

var errDate = errors.New("want YYYY-MM-DD[ BC], infinity or -infinity")

// parseDate reads "2024-01-31", "0044-03-15 BC", "infinity", "-infinity".
func parseDate(s string) (any, error) {
	if inf, ok := infinity(s); ok {
		return inf, nil
	}
	s, bc := strings.CutSuffix(s, " BC")
	y, m, d, rest, ok := splitDate(s)
	if !ok || rest != "" {
		return nil, errDate
	}
	return civil(y, m, d, bc, 0)
}

func infinity(s string) (cdc.Infinity, bool) {
	switch s {
	case "infinity":
		return cdc.Infinity{Sign: 1}, true
	case "-infinity":
		return cdc.Infinity{Sign: -1}, true
	}
	return cdc.Infinity{}, false
}

// splitDate reads Y+-MM-DD at the start of s.
func splitDate(s string) (y, m, d int, rest string, ok bool) {
	i := strings.IndexByte(s, '-')
	if i < 4 || len(s) < i+6 || s[i+3] != '-' || !allDigits(s[:i]) || i > 9 {
		return 0, 0, 0, "", false
	}
	y, _ = strconv.Atoi(s[:i])
	m, err1 := strconv.Atoi(s[i+1 : i+3])
	d, err2 := strconv.Atoi(s[i+4 : i+6])
	if err1 != nil || err2 != nil || !allDigits(s[i+1:i+3]) || !allDigits(s[i+4:i+6]) {
		return 0, 0, 0, "", false
	}
	return y, m, d, s[i+6:], true
}

// civil builds a UTC time from a PostgreSQL calendar date (year 1 BC is
// astronomical year 0) plus micros since midnight.
func civil(y, m, d int, bc bool, micros int64) (time.Time, error) {
	if y == 0 {
		return time.Time{}, errDate
	}
	if bc {
		y = 1 - y
	}
	if m < 1 || m > 12 || d < 1 || d > time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return time.Time{}, errDate
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	return t.Add(time.Duration(micros) * time.Microsecond), nil
}

var errClock = errors.New("want HH:MM:SS[.ffffff]")

// parseClock reads "10:11:12.123456" (up to 24:00:00) into microseconds.
func parseClock(s string) (int64, error) {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' || !allDigits(s[:2]) || !allDigits(s[3:5]) || !allDigits(s[6:8]) {
		return 0, errClock
	}
	h, _ := strconv.Atoi(s[:2])
	m, _ := strconv.Atoi(s[3:5])
	sec, _ := strconv.Atoi(s[6:8])
	frac, err := fraction(s[8:])
	us := int64(h)*3600e6 + int64(m)*60e6 + int64(sec)*1e6 + frac
	if err != nil || m > 59 || sec > 59 || us > 24*3600e6 {
		return 0, errClock
	}
	return us, nil
}

// fraction reads "" or ".f" with 1 to 6 digits, in microseconds.
func fraction(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if s[0] != '.' || len(s) < 2 || len(s) > 7 || !allDigits(s[1:]) {
		return 0, errClock
	}
	n, _ := strconv.ParseInt(s[1:], 10, 64)
	for i := len(s) - 1; i < 6; i++ {
		n *= 10
	}
	return n, nil
}

// parseTimestamp reads "2024-01-31 10:11:12.123456[+02[:30[:15]]][ BC]".
func parseTimestamp(s string, zoned bool) (any, error) {
	if inf, ok := infinity(s); ok {
		return inf, nil
	}
	s, bc := strings.CutSuffix(s, " BC")
	y, m, d, rest, ok := splitDate(s)
	if !ok || len(rest) < 9 || rest[0] != ' ' {
		return nil, errors.New("want YYYY-MM-DD HH:MM:SS[.ffffff]")
	}
	clock, offset := rest[1:], ""
	if zoned {
		i := strings.LastIndexAny(clock, "+-")
		if i < 0 {
			return nil, errors.New("missing zone offset")
		}
		clock, offset = clock[:i], clock[i:]
	}
	us, err := parseClock(clock)
	if err != nil || us == 24*3600e6 {
		return nil, errClock
	}
	t, err := civil(y, m, d, bc, us)
	if err != nil {
		return nil, err
	}
	if zoned {
		off, err := parseOffset(offset)
		if err != nil {
			return nil, err
		}
		t = t.Add(-time.Duration(off) * time.Second)
	}
	return t, nil
}

// parseOffset reads "+02", "-05:30" or "+00:53:28" into seconds east of UTC.
func parseOffset(s string) (int, error) {
	bad := fmt.Errorf("zone offset %q: want ±HH[:MM[:SS]]", s)
	if len(s) < 3 || (s[0] != '+' && s[0] != '-') {
		return 0, bad
	}
	parts := strings.Split(s[1:], ":")
	if len(parts) > 3 {
		return 0, bad
	}
	secs := 0
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if len(p) != 2 || !allDigits(p) || err != nil || (i > 0 && n > 59) {
			return 0, bad
		}
		secs += n * []int{3600, 60, 1}[i]
	}
	if s[0] == '-' {
		secs = -secs
	}
	return secs, nil
}
