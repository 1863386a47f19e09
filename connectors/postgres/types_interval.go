package postgres

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

const (
	microsPerSecond = 1_000_000
	microsPerMinute = 60 * microsPerSecond
	microsPerHour   = 60 * microsPerMinute
)

var errInterval = errors.New(`want IntervalStyle postgres, e.g. "1 year 2 mons 3 days -04:05:06.000007"`)

// parseInterval reads an interval in IntervalStyle postgres, PostgreSQL's
// default and what the source sets: "[N year[s]] [N mon[s]] [N day[s]]
// [[+-]H:MM:SS[.ffffff]]", each number signed on its own ("-1 days
// +02:00:00"), hours unbounded, "00:00:00" for zero.
func parseInterval(s string) (cdc.Interval, error) {
	var months, days, micros int64
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return cdc.Interval{}, errInterval
	}
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if strings.Contains(f, ":") {
			us, ok := parseIntervalClock(f)
			if !ok || i != len(fields)-1 {
				return cdc.Interval{}, errInterval
			}
			micros = us
			continue
		}
		if i+1 == len(fields) {
			return cdc.Interval{}, errInterval
		}
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil {
			return cdc.Interval{}, errInterval
		}
		i++
		var ok bool
		switch fields[i] {
		case "year", "years":
			months, ok = addMul(months, n, 12)
		case "mon", "mons":
			months, ok = addMul(months, n, 1)
		case "day", "days":
			days, ok = addMul(days, n, 1)
		}
		if !ok {
			return cdc.Interval{}, errInterval
		}
	}
	if months > math.MaxInt32 || months < math.MinInt32 || days > math.MaxInt32 || days < math.MinInt32 {
		return cdc.Interval{}, errInterval
	}
	return cdc.Interval{Months: int32(months), Days: int32(days), Micros: micros}, nil
}

// parseIntervalClock reads "[+-]H+:MM:SS[.ffffff]". A negative value is
// summed negatively, so the most negative interval does not overflow.
func parseIntervalClock(s string) (int64, bool) {
	sign := int64(1)
	if s[0] == '-' || s[0] == '+' {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	hs, rest, ok1 := strings.Cut(s, ":")
	ms, rest, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || hs == "" || !allDigits(hs) || len(ms) != 2 || !allDigits(ms) ||
		len(rest) < 2 || !allDigits(rest[:2]) {
		return 0, false
	}
	h, err := strconv.ParseInt(hs, 10, 64)
	m, _ := strconv.ParseInt(ms, 10, 64)
	sec, _ := strconv.ParseInt(rest[:2], 10, 64)
	frac, ferr := fraction(rest[2:])
	if err != nil || ferr != nil || m > 59 || sec > 59 {
		return 0, false
	}
	us, ok := addMul(0, sign*h, microsPerHour)
	for _, p := range [][2]int64{{m, microsPerMinute}, {sec, microsPerSecond}, {frac, 1}} {
		if ok {
			us, ok = addMul(us, sign*p[0], p[1])
		}
	}
	return us, ok
}

// addMul returns acc + n*unit and whether it did not overflow.
func addMul(acc, n, unit int64) (int64, bool) {
	if n != 0 && (n > math.MaxInt64/unit || n < math.MinInt64/unit) {
		return 0, false
	}
	prod := n * unit
	sum := acc + prod
	if (prod > 0 && sum < acc) || (prod < 0 && sum > acc) {
		return 0, false
	}
	return sum, true
}

// formatIntervalText writes an interval as PostgreSQL input with an explicit
// sign on every part, "+1 years +2 mons -3 days +04:05:06.000007", which
// reads the same under every IntervalStyle (sql_standard would otherwise
// spread a leading minus over unsigned parts).
func formatIntervalText(iv cdc.Interval) string {
	b := make([]byte, 0, 48)
	b = appendSigned(b, int64(iv.Months/12))
	b = append(b, " years "...)
	b = appendSigned(b, int64(iv.Months%12))
	b = append(b, " mons "...)
	b = appendSigned(b, int64(iv.Days))
	b = append(b, " days "...)
	us := iv.Micros
	if us < 0 {
		b = append(b, '-')
	} else {
		b = append(b, '+')
	}
	// Work on the magnitude as uint64: -MinInt64 does not fit an int64.
	mag := uint64(us)
	if us < 0 {
		mag = -mag
	}
	if h := mag / microsPerHour; h < 10 {
		b = append(b, '0', byte('0'+h))
	} else {
		b = strconv.AppendUint(b, h, 10)
	}
	mag %= microsPerHour
	b = append(b, ':')
	b = appendPadded(b, int64(mag/microsPerMinute), 2)
	mag %= microsPerMinute
	b = append(b, ':')
	b = appendPadded(b, int64(mag/microsPerSecond), 2)
	if f := mag % microsPerSecond; f != 0 {
		b = append(b, '.')
		b = appendPadded(b, int64(f), 6)
	}
	return string(b)
}

func appendSigned(b []byte, n int64) []byte {
	if n >= 0 {
		b = append(b, '+')
	}
	return strconv.AppendInt(b, n, 10)
}

// appendPadded appends a non-negative n with at least width digits.
func appendPadded(b []byte, n int64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], n, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
