package transforms

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

func TestConvert(t *testing.T) {
	ts := time.Date(2024, 1, 31, 10, 11, 12, 123456789, time.UTC)
	tests := []struct {
		in      any
		kind    cdc.Kind
		elem    cdc.Kind
		want    any
		wantErr string
	}{
		{nil, cdc.KindInt32, 0, nil, ""},
		{"42", cdc.KindInt16, 0, int16(42), ""},
		{" -42 ", cdc.KindInt64, 0, int64(-42), ""},
		{"1e3", cdc.KindInt32, 0, int32(1000), ""},
		{cdc.Decimal("12.000"), cdc.KindInt32, 0, int32(12), ""},
		{cdc.Decimal("12.5"), cdc.KindInt32, 0, nil, "has a fraction"},
		{"forty", cdc.KindInt32, 0, nil, `cannot convert string "forty" to int32: not a number`},
		{int64(40000), cdc.KindInt16, 0, nil, "out of range"},
		{float64(3), cdc.KindInt64, 0, int64(3), ""},
		{math.NaN(), cdc.KindInt64, 0, nil, "has a fraction or is not finite"},
		{1e300, cdc.KindInt64, 0, nil, "out of range"},
		{true, cdc.KindInt32, 0, int32(1), ""},
		{"NaN", cdc.KindFloat64, 0, math.NaN(), ""},
		{"-Infinity", cdc.KindFloat32, 0, float32(math.Inf(-1)), ""},
		{1e300, cdc.KindFloat32, 0, nil, "out of range"},
		{cdc.Decimal("0.1"), cdc.KindFloat64, 0, 0.1, ""},
		{float64(0.1), cdc.KindDecimal, 0, cdc.Decimal("0.1"), ""},
		{int32(-3), cdc.KindDecimal, 0, cdc.Decimal("-3"), ""},
		{"1.2e2", cdc.KindDecimal, 0, cdc.Decimal("120"), ""},
		{"0012.50", cdc.KindDecimal, 0, cdc.Decimal("0012.50"), ""},
		{"1/2", cdc.KindDecimal, 0, nil, "not a number"},
		{"yes", cdc.KindBool, 0, true, ""},
		{"OFF", cdc.KindBool, 0, false, ""},
		{int64(2), cdc.KindBool, 0, true, ""},
		{"maybe", cdc.KindBool, 0, nil, "want true/false"},
		{1.5, cdc.KindString, 0, "1.5", ""},
		{1e20, cdc.KindString, 0, "1e+20", ""},
		{ts, cdc.KindString, 0, "2024-01-31T10:11:12.123456789Z", ""},
		{[]byte{0xff}, cdc.KindString, 0, nil, "not UTF-8"},
		{"héllo", cdc.KindBytes, 0, []byte("héllo"), ""},
		{"2024-01-31", cdc.KindDate, 0, time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC), ""},
		{ts, cdc.KindDate, 0, time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC), ""},
		{"2024-01-31 10:11:12.5+02", cdc.KindTimestampTZ, 0, time.Date(2024, 1, 31, 8, 11, 12, 5e8, time.UTC), ""},
		{"2024-01-31T10:11:12", cdc.KindTimestamp, 0, time.Date(2024, 1, 31, 10, 11, 12, 0, time.UTC), ""},
		{ts, cdc.KindTimestampTZ, 0, ts.Truncate(time.Microsecond), ""},
		{"-infinity", cdc.KindTimestampTZ, 0, cdc.Infinity{Sign: -1}, ""},
		{"31/01/2024", cdc.KindDate, 0, nil, "want an ISO 8601 date"},
		{"10:11:12.5", cdc.KindTime, 0, 10*time.Hour + 11*time.Minute + 12500*time.Millisecond, ""},
		{25 * time.Hour, cdc.KindTime, 0, nil, "out of range"},
		{90 * time.Minute, cdc.KindInterval, 0, cdc.Interval{Micros: 5400000000}, ""},
		{map[string]any{"months": int64(1), "days": int64(2)}, cdc.KindInterval, 0, cdc.Interval{Months: 1, Days: 2}, ""},
		{"6AE909D47A2256F69019388E2235CC94", cdc.KindUUID, 0, "6ae909d4-7a22-56f6-9019-388e2235cc94", ""},
		{"6ae909d4-7a22-56f6-9019-388e2235cc9", cdc.KindUUID, 0, nil, "want 8-4-4-4-12"},
		{`{"a": 1}`, cdc.KindJSON, 0, cdc.JSON(`{"a": 1}`), ""},
		{"{", cdc.KindJSON, 0, nil, "not a JSON document"},
		{map[string]any{"d": cdc.Decimal("1.50"), "t": ts}, cdc.KindJSON, 0, cdc.JSON(`{"d":1.50,"t":"2024-01-31T10:11:12.123456789Z"}`), ""},
		{math.Inf(1), cdc.KindJSON, 0, nil, "JSON has no NaN"},
		{[]any{"1", int64(2), nil, []any{"3"}}, cdc.KindArray, cdc.KindInt32, []any{int32(1), int32(2), nil, []any{int32(3)}}, ""},
		{cdc.JSON(`["a"]`), cdc.KindArray, cdc.KindString, []any{"a"}, ""},
		{[]any{"x"}, cdc.KindArray, cdc.KindInt32, nil, "element 0"},
		{int64(1), cdc.KindArray, cdc.KindInt32, nil, "no conversion"},
		{strings.Repeat("9", 2000), cdc.KindInt64, 0, nil, "not a number"},
	}
	for _, tt := range tests {
		got, err := convert(tt.in, tt.kind, tt.elem)
		name := typeName(tt.kind, tt.elem) + " from " + describe(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if f, ok := tt.want.(float64); ok && math.IsNaN(f) {
			if g, ok := got.(float64); !ok || !math.IsNaN(g) {
				t.Errorf("%s = %v, want NaN", name, got)
			}
			continue
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", name, d)
		}
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		in   any
		kind cdc.Kind
		want string
	}{
		{int16(-1), 0, "-1"}, {true, 0, "true"}, {float32(0.1), 0, "0.1"}, {1e-5, 0, "1e-05"}, {123456789012.0, 0, "123456789012"},
		{math.Inf(-1), 0, "-Infinity"}, {cdc.Decimal("1.10"), 0, "1.10"}, {[]byte{1, 0xab}, 0, `\x01ab`},
		{time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC), cdc.KindDate, "2024-01-02"},
		{90*time.Minute + time.Microsecond, cdc.KindTime, "01:30:00.000001"},
		{cdc.Interval{Months: 14, Days: 3, Micros: 1500000}, 0, "P14M3DT1.5S"},
		{cdc.Infinity{Sign: 1}, 0, "infinity"}, {[]any{int64(1), "a"}, 0, `[1,"a"]`},
	}
	for _, tt := range tests {
		if got := text(tt.in, tt.kind); got != tt.want {
			t.Errorf("text(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
