package transforms

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Conversions to booleans and numbers (see convert).

func toBool(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int16, int32, int64, int:
		n, _ := toInt(x, 64)
		return n != 0, nil
	case string:
		// PostgreSQL's spellings.
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "t", "true", "y", "yes", "on", "1":
			return true, nil
		case "f", "false", "n", "no", "off", "0":
			return false, nil
		}
		return nil, errors.New("want true/false, t/f, yes/no, on/off or 1/0")
	}
	return nil, errors.New("no conversion")
}

// toInt converts to an integer of the given bits: integers in range,
// floats and decimals without a fraction, decimal text, booleans (0, 1).
func toInt(v any, bits int) (int64, error) {
	var n int64
	switch x := v.(type) {
	case int16:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	case int:
		n = int64(x)
	case uint64:
		if x > math.MaxInt64 {
			return 0, errors.New("out of range")
		}
		n = int64(x)
	case bool:
		if x {
			n = 1
		}
	case float32:
		return floatToInt(float64(x), bits)
	case float64:
		return floatToInt(x, bits)
	case cdc.Decimal:
		return decimalToInt(string(x), bits)
	case string:
		return decimalToInt(strings.TrimSpace(x), bits)
	case json.Number:
		return decimalToInt(string(x), bits)
	default:
		return 0, errors.New("no conversion")
	}
	if bits < 64 && (n < -1<<(bits-1) || n > 1<<(bits-1)-1) {
		return 0, errors.New("out of range")
	}
	return n, nil
}

func floatToInt(f float64, bits int) (int64, error) {
	if f != math.Trunc(f) || math.IsInf(f, 0) {
		return 0, errors.New("has a fraction or is not finite")
	}
	if f < -math.Ldexp(1, bits-1) || f >= math.Ldexp(1, bits-1) {
		return 0, errors.New("out of range")
	}
	return int64(f), nil
}

func decimalToInt(s string, bits int) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, bits); err == nil {
		return n, nil
	}
	r, ok := parseDecimal(s)
	if !ok {
		return 0, errors.New("not a number")
	}
	if !r.IsInt() {
		return 0, errors.New("has a fraction")
	}
	if !r.Num().IsInt64() {
		return 0, errors.New("out of range")
	}
	return toInt(r.Num().Int64(), bits)
}

// parseDecimal parses [+-]digits[.digits][e[+-]digits], no NaN or
// infinities.
func parseDecimal(s string) (*big.Rat, bool) {
	if s == "" || len(s) > 1000 || strings.ContainsAny(s, "/_xXpP") {
		return nil, false
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		if exp, err := strconv.Atoi(s[i+1:]); err != nil || exp > 1000 || exp < -1000 {
			return nil, false
		}
	}
	return new(big.Rat).SetString(s)
}

func toFloat(v any, bits int) (float64, error) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		return float64(x), nil
	case int16, int32, int64, int, uint64:
		n, err := toInt(x, 64)
		if err != nil {
			return 0, err
		}
		f = float64(n)
	case cdc.Decimal, string, json.Number:
		s := strings.TrimSpace(fmt.Sprint(x))
		switch strings.ToLower(s) {
		case "nan":
			return math.NaN(), nil
		case "infinity", "+infinity", "inf":
			return math.Inf(1), nil
		case "-infinity", "-inf":
			return math.Inf(-1), nil
		}
		if _, ok := parseDecimal(s); !ok {
			return 0, errors.New("not a number")
		}
		var err error
		if f, err = strconv.ParseFloat(s, 64); err != nil {
			return 0, errors.New("out of range")
		}
	default:
		return 0, errors.New("no conversion")
	}
	if bits == 32 && !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
		return 0, errors.New("out of range")
	}
	return f, nil
}

func toDecimal(v any) (any, error) {
	switch x := v.(type) {
	case cdc.Decimal:
		return x, nil
	case int16, int32, int64, int, uint64:
		n, err := toInt(x, 64)
		return cdc.Decimal(strconv.FormatInt(n, 10)), err
	case float32, float64:
		return cdc.Decimal(text(x, cdc.KindUnknown)), nil
	case string, json.Number:
		s := strings.TrimSpace(fmt.Sprint(x))
		switch strings.ToLower(s) {
		case "nan":
			return cdc.Decimal("NaN"), nil
		case "infinity", "+infinity":
			return cdc.Decimal("Infinity"), nil
		case "-infinity":
			return cdc.Decimal("-Infinity"), nil
		}
		r, ok := parseDecimal(s)
		if !ok {
			return nil, errors.New("not a number")
		}
		if strings.ContainsAny(s, "eE+") || strings.HasPrefix(strings.TrimPrefix(s, "-"), ".") {
			return cdc.Decimal(ratText(r)), nil
		}
		return cdc.Decimal(s), nil
	}
	return nil, errors.New("no conversion")
}

// ratText writes an exact decimal with as many fraction digits as needed
// (r has a finite decimal expansion: it came from decimal text).
func ratText(r *big.Rat) string {
	for prec := 0; prec <= 2000; prec++ {
		if s := r.FloatString(prec); ratEqual(s, r) {
			return s
		}
	}
	return r.FloatString(2000)
}

func ratEqual(s string, r *big.Rat) bool {
	x, ok := new(big.Rat).SetString(s)
	return ok && x.Cmp(r) == 0
}
