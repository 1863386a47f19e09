package debezium

import (
	"fmt"
	"math"
	"strconv"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// appendIntervalText appends an interval as io.debezium.time.Interval text
// (without quotes): ISO 8601 with every component present and each carrying
// its own sign, as Debezium's interval.handling.mode=string writes it, e.g.
// "P1Y2M3DT4H5M6.000007S", "P0Y0M-1DT2H0M0S", "P0Y0M0DT0H0M-0.5S". Months
// become years and months, microseconds become hours, minutes and seconds
// (truncated towards zero, so all time parts share the sign of Micros); days
// stay days. The conversion is exact both ways.
func appendIntervalText(b []byte, iv cdc.Interval) []byte {
	b = append(b, 'P')
	b = strconv.AppendInt(b, int64(iv.Months/12), 10)
	b = append(b, 'Y')
	b = strconv.AppendInt(b, int64(iv.Months%12), 10)
	b = append(b, 'M')
	b = strconv.AppendInt(b, int64(iv.Days), 10)
	b = append(b, 'D', 'T')
	us := iv.Micros
	h := us / microsPerHour
	us -= h * microsPerHour
	m := us / microsPerMin
	us -= m * microsPerMin
	b = strconv.AppendInt(b, h, 10)
	b = append(b, 'H')
	b = strconv.AppendInt(b, m, 10)
	b = append(b, 'M')
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/microsPerSec, 10)
	if f := us % microsPerSec; f != 0 {
		b = append(b, '.')
		start := len(b)
		b = appendPad(b, f, 6)
		for len(b) > start && b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return append(b, 'S')
}

// parseInterval reads an ISO 8601 duration as appendIntervalText writes it.
// It is lenient about what it accepts: components may be missing, in any
// order, signed, the whole may be negated ("-P1D"), and W (weeks) is
// allowed. Only seconds may have a fraction, of at most six digits.
func parseInterval(s string) (cdc.Interval, error) {
	bad := func(why string) (cdc.Interval, error) {
		return cdc.Interval{}, fmt.Errorf("interval %q: %s", s, why)
	}
	p := scanner{s: s}
	neg := p.accept('-')
	if !p.accept('P') {
		return bad("want ISO 8601 duration like P1Y2M3DT4H5M6.000007S")
	}
	var months, days, micros int64
	inTime, parts := false, 0
	for !p.done() {
		if !inTime && p.accept('T') {
			inTime = true
			continue
		}
		sign := int64(1)
		if p.accept('-') {
			sign = -1
		} else {
			p.accept('+')
		}
		n, ok := p.digits(1, 18)
		if !ok {
			return bad("want a number")
		}
		n *= sign
		var frac int64
		hasFrac := p.accept('.') || p.accept(',')
		if hasFrac {
			if frac, ok = p.fraction(6); !ok {
				return bad("seconds fraction of 1 to 6 digits")
			}
			frac *= sign
		}
		unit := p.next()
		if hasFrac && (unit != 'S' || !inTime) {
			return bad("only seconds may have a fraction")
		}
		switch {
		case !inTime && unit == 'Y':
			months, ok = mulAdd(months, n, 12)
		case !inTime && unit == 'M':
			months, ok = mulAdd(months, n, 1)
		case !inTime && unit == 'W':
			days, ok = mulAdd(days, n, 7)
		case !inTime && unit == 'D':
			days, ok = mulAdd(days, n, 1)
		case inTime && unit == 'H':
			micros, ok = mulAdd(micros, n, microsPerHour)
		case inTime && unit == 'M':
			micros, ok = mulAdd(micros, n, microsPerMin)
		case inTime && unit == 'S':
			if micros, ok = mulAdd(micros, n, microsPerSec); ok {
				micros, ok = mulAdd(micros, frac, 1)
			}
		default:
			return bad(fmt.Sprintf("unexpected unit %q", unit))
		}
		if !ok {
			return bad("out of range")
		}
		parts++
	}
	if parts == 0 {
		return bad("no components")
	}
	if neg {
		if micros == math.MinInt64 {
			return bad("out of range")
		}
		months, days, micros = -months, -days, -micros
	}
	if months > math.MaxInt32 || months < math.MinInt32 || days > math.MaxInt32 || days < math.MinInt32 {
		return bad("months or days out of int32 range")
	}
	return cdc.Interval{Months: int32(months), Days: int32(days), Micros: micros}, nil
}

// mulAdd returns acc + n*unit and whether it did not overflow.
func mulAdd(acc, n, unit int64) (int64, bool) {
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

// scanner reads ASCII text byte by byte.
type scanner struct {
	s string
	i int
}

func (p *scanner) done() bool { return p.i >= len(p.s) }

func (p *scanner) peek(c byte) bool { return p.i < len(p.s) && p.s[p.i] == c }

func (p *scanner) accept(c byte) bool {
	if p.peek(c) {
		p.i++
		return true
	}
	return false
}

// next returns the next byte, or 0 at the end.
func (p *scanner) next() byte {
	if p.done() {
		return 0
	}
	p.i++
	return p.s[p.i-1]
}

// digits reads between min and max decimal digits; more than max digits in a
// row is a failure.
func (p *scanner) digits(min, max int) (int64, bool) {
	var n int64
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		if p.i-start == max {
			return 0, false
		}
		n = n*10 + int64(p.s[p.i]-'0')
		p.i++
	}
	return n, p.i-start >= min
}

// fraction reads 1 to max digits after a decimal point and returns them
// scaled to max digits ("5" with max 6 is 500000).
func (p *scanner) fraction(max int) (int64, bool) {
	start := p.i
	n, ok := p.digits(1, max)
	if !ok {
		return 0, false
	}
	for i := p.i - start; i < max; i++ {
		n *= 10
	}
	return n, true
}
