package debezium

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// warm returns a codec that has seen the schemas of r, and r's key and value.
func warm(t testing.TB, r cdc.Record) (*JSON, []byte, []byte) {
	t.Helper()
	j := newCodec(true)
	key, err := j.EncodeKey(r)
	if err != nil {
		t.Fatal(err)
	}
	value, err := j.EncodeValue(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Decode(key, value); err != nil {
		t.Fatalf("first decode: %v", err)
	}
	return j, key, value
}

// TestFastPathMatchesFull decodes every kind and operation through the
// fast path and checks it takes it and returns what the full decode does.
func TestFastPathMatchesFull(t *testing.T) {
	for name, r := range allCases() {
		t.Run(name, func(t *testing.T) {
			j, key, value := warm(t, r)
			got, ok := j.tryFast(key, value)
			if !ok {
				_, err := j.decodeFast(knownParts(t, j, key, value))
				t.Fatalf("fast path not taken: %v", err)
			}
			want, err := j.decode(key, value, false)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got, cmpOpts...); d != "" {
				t.Errorf("fast path differs (-full +fast):\n%s", d)
			}
			if d := cmp.Diff(r, got, cmpOpts...); d != "" {
				t.Errorf("fast path differs from the encoded record (-encoded +fast):\n%s", d)
			}
		})
	}
}

func knownParts(t *testing.T, j *JSON, key, value []byte) (vs, ks, payload, kp []byte) {
	t.Helper()
	vs, payload, ok := j.known.split(value)
	if !ok {
		t.Fatal("value schema not known")
	}
	if ks, kp, ok = j.knownKeys.split(key); !ok && len(key) > 0 {
		t.Fatal("key schema not known")
	}
	return vs, ks, payload, kp
}

// TestFastPathOddPayloads gives payloads under a known schema that the fast
// path must either decode exactly as the full decode does or leave to it.
func TestFastPathOddPayloads(t *testing.T) {
	r := record(col(cdc.KindString, "text"), "x", true)
	const src = `"source":{"version":"1","connector":"postgresql","name":"prod.pg","ts_ms":1,"snapshot":"false","db":"shop","schema":"public","table":"t","lsn":5}`
	tests := map[string]struct {
		payload string
		fast    bool // the fast path takes it
	}{
		"plain":                      {`{"after":{"id":1,"v":"a"},` + src + `,"op":"c"}`, true},
		"member twice":               {`{"after":{"id":1,"v":"a"},"after":{"id":1,"v":"b"},` + src + `,"op":"c"}`, true},
		"column twice":               {`{"after":{"id":1,"v":"a","v":"b"},` + src + `,"op":"c"}`, true},
		"escapes":                    {`{"after":{"id":1,"v":"\u00e9\n\"\\\/"},` + src + `,"op":"c"}`, true},
		"surrogate pair":             {`{"after":{"id":1,"v":"\ud83c\udf89"},` + src + `,"op":"c"}`, true},
		"broken pair":                {`{"after":{"id":1,"v":"\ud800\u0041"},` + src + `,"op":"c"}`, false},
		"two low surrogates":         {`{"after":{"id":1,"v":"\udc00\udc00"},` + src + `,"op":"c"}`, false},
		"high then e acute":          {`{"after":{"id":1,"v":"\uD83D\u00e9x"},` + src + `,"op":"c"}`, false},
		"real U+FFFD":                {`{"after":{"id":1,"v":"a\ufffdb"},` + src + `,"op":"c"}`, false},
		"broken pair in name":        {`{"after":{"id":1,"v":"a"},"source":{"schema":"public","table":"t","name":"\udc00\udc00"},"op":"c"}`, false},
		"broken pair in extra key":   {`{"after":{"id":1,"v":"a"},"source":{"schema":"public","table":"t","\ud800\u0041":1},"op":"c"}`, false},
		"transaction id twice":       {`{"after":{"id":1,"v":"a"},` + src + `,"op":"c","transaction":{"id":"7","total_order":2,"id":"8"}}`, true},
		"transaction null then id":   {`{"after":{"id":1,"v":"a"},` + src + `,"op":"c","transaction":{"id":null,"id":"8","total_order":1}}`, true},
		"total_order twice":          {`{"after":{"id":1,"v":"a"},` + src + `,"op":"c","transaction":{"id":"7","total_order":2,"total_order":3}}`, true},
		"escaped id key twice":       {`{"after":{"id":1,"v":"a"},` + src + `,"op":"c","transaction":{"id":"7","total_order":2,"\u0069d":"9"}}`, true},
		"backslash u text":           {`{"after":{"id":1,"v":"\\ud800"},` + src + `,"op":"c"}`, false},
		"invalid utf8":               {"{\"after\":{\"id\":1,\"v\":\"\xff\"}," + src + `,"op":"c"}`, false},
		"lone surrogate":             {`{"after":{"id":1,"v":"\ud800"},` + src + `,"op":"c"}`, false},
		"control char":               {"{\"after\":{\"id\":1,\"v\":\"a\tb\"}," + src + `,"op":"c"}`, false},
		"control char before escape": {"{\"after\":{\"id\":1,\"v\":\"\x00\\\\b\"}," + src + `,"op":"c"}`, false},
		"leading zero":               {`{"after":{"id":01,"v":"a"},` + src + `,"op":"c"}`, false},
		"bare NaN":                   {`{"after":{"id":NaN,"v":"a"},` + src + `,"op":"c"}`, false},
		"float for int":              {`{"after":{"id":1.0,"v":"a"},` + src + `,"op":"c"}`, false},
		"string for int":             {`{"after":{"id":"1","v":"a"},` + src + `,"op":"c"}`, false},
		"int out of range":           {`{"after":{"id":2147483648,"v":"a"},` + src + `,"op":"c"}`, false},
		"int64 overflow":             {`{"after":{"id":99999999999999999999,"v":"a"},` + src + `,"op":"c"}`, false},
		"negative zero":              {`{"after":{"id":-0,"v":"a"},` + src + `,"op":"c"}`, true},
		"int exponent":               {`{"after":{"id":1e2,"v":"a"},` + src + `,"op":"c"}`, false},
		"unknown column":             {`{"after":{"id":1,"w":"a"},` + src + `,"op":"c"}`, false},
		"no op":                      {`{"after":{"id":1,"v":"a"},` + src + `}`, false},
		"bad op":                     {`{"after":{"id":1,"v":"a"},` + src + `,"op":"x"}`, false},
		"no source":                  {`{"after":{"id":1,"v":"a"},"op":"c"}`, false},
		"null table":                 {`{"after":{"id":1,"v":"a"},"source":{"schema":"public","table":null},"op":"c"}`, true},
		"transaction":                {`{"after":{"id":1,"v":"a"},` + src + `,"op":"c","transaction":{"id":"7","total_order":2}}`, true},
		"transaction no order":       {`{"after":{"id":1,"v":"a"},` + src + `,"op":"c","transaction":{"id":"7"}}`, false},
		"transaction null id":        {`{"after":{"id":1,"v":"a"},` + src + `,"op":"c","transaction":{"id":null}}`, true},
		"extra types":                {`{"after":{"id":1,"v":"a"},"source":{"schema":"public","table":"t","lsn":"5","xmin":1.5,"flag":true},"op":"c"}`, false},
		"trailing garbage":           {`{"after":{"id":1,"v":"a"},` + src + `,"op":"c"} x`, false},
		"not an object":              {`[1]`, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			j, key, value := warm(t, r)
			vs, ks, _, kp := knownParts(t, j, key, value)
			msg := []byte(`{"schema":` + string(vs) + `,"payload":` + tc.payload + `}`)
			got, ok := j.tryFast(key, msg)
			if ok != tc.fast {
				_, err := j.decodeFast(vs, ks, []byte(tc.payload), kp)
				t.Fatalf("fast path taken: %v, want %v (%v)", ok, tc.fast, err)
			}
			want, err := j.decode(key, msg, false)
			if ok && err != nil {
				t.Fatalf("fast path took a message the full decode rejects: %v", err)
			}
			if ok {
				if d := cmp.Diff(want, got, cmpOpts...); d != "" {
					t.Errorf("fast path differs (-full +fast):\n%s", d)
				}
			}
			// Decode as a user calls it agrees with the full decode.
			dec, derr := j.Decode(key, msg)
			if (derr == nil) != (err == nil) {
				t.Fatalf("Decode error %v, full decode error %v", derr, err)
			}
			if err == nil {
				if d := cmp.Diff(want, dec, cmpOpts...); d != "" {
					t.Errorf("Decode differs (-full +Decode):\n%s", d)
				}
			}
		})
	}
}

// FuzzFastPath puts fuzzed payloads under a known schema (one per case,
// chosen by the fuzzed index): whatever the fast path accepts, the full
// decode accepts and decodes the same way.
func FuzzFastPath(f *testing.F) {
	type pair struct{ key, value []byte }
	var cases []pair
	names := slices.Sorted(maps.Keys(allCases()))
	for i, name := range names {
		r := allCases()[name]
		codec := newCodec(true)
		key, err1 := codec.EncodeKey(r)
		value, err2 := codec.EncodeValue(r)
		if err := errors.Join(err1, err2); err != nil {
			f.Fatal(err)
		}
		cases = append(cases, pair{key, value})
		_, payload, err := split(value)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), []byte(payload))
	}
	// Escapes and repeated members, where fastjson and encoding/json part.
	for _, p := range []string{
		`{"after":{"id":1,"v":"\ud800\u0041"},"source":{"schema":"public","table":"t","\udc00\udc00":"\uD83D\u00e9"},"op":"c"}`,
		`{"after":{"id":1},"source":{"schema":"public","table":"t"},"op":"c","transaction":{"id":"7","total_order":2,"id":"8","total_order":3}}`,
	} {
		for i := range cases {
			f.Add(uint8(i), []byte(p))
		}
	}
	f.Fuzz(func(t *testing.T, i uint8, payload []byte) {
		c := cases[int(i)%len(cases)]
		j := newCodec(true)
		if _, err := j.Decode(c.key, c.value); err != nil {
			t.Fatalf("decode of the encoded case: %v", err)
		}
		vs, _, ok := j.known.split(c.value)
		if !ok {
			t.Fatal("schema not known after a full decode")
		}
		msg := bytes.Join([][]byte{[]byte(`{"schema":`), vs, []byte(`,"payload":`), payload, []byte(`}`)}, nil)
		got, ok := j.tryFast(c.key, msg)
		if !ok {
			return
		}
		want, err := j.decode(c.key, msg, false)
		if err != nil {
			t.Fatalf("fast path took a payload the full decode rejects (%v): %s", err, payload)
		}
		if d := cmp.Diff(want, got, cmpOpts...); d != "" {
			t.Fatalf("fast path differs (-full +fast):\n%s\npayload: %s", d, payload)
		}
	})
}

// TestDecodeConcurrent decodes from several goroutines at once, as a
// pipeline's parallel transform does (run with -race).
func TestDecodeConcurrent(t *testing.T) {
	j := newCodec(true)
	type msg struct {
		key, value []byte
		want       cdc.Record
	}
	var msgs []msg
	for _, r := range allCases() {
		key, err1 := j.EncodeKey(r)
		value, err2 := j.EncodeValue(r)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, msg{key, value, r})
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3 * len(msgs) {
				m := msgs[(i+g)%len(msgs)]
				got, err := j.Decode(m.key, m.value)
				if err != nil {
					t.Errorf("decode: %v", err)
					return
				}
				if d := cmp.Diff(m.want, got, cmpOpts...); d != "" {
					t.Errorf("decoded record differs (-want +got):\n%s", d)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestHasControl(t *testing.T) {
	for n := 0; n <= 20; n++ {
		for pos := -1; pos < n; pos++ {
			for _, c := range []byte{0x00, 0x09, 0x1f, 0x20, 0x7f, 0x80, 0x9f, 0xff} {
				b := bytes.Repeat([]byte{'a'}, n)
				for i := range b { // high bytes around, which must not count
					if i%3 == 0 {
						b[i] = 0xe2
					}
				}
				if pos >= 0 {
					b[pos] = c
				}
				want := pos >= 0 && c < 0x20
				if got := hasControl(b); got != want {
					t.Fatalf("hasControl(%x) = %v, want %v", b, got, want)
				}
			}
		}
	}
}

// TestFastPathEmptyKeyStruct: a key whose struct has no fields is no key,
// on both paths.
func TestFastPathEmptyKeyStruct(t *testing.T) {
	const schema = `{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":true,"name":"s.t.Value","field":"after"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"}],"optional":false,"field":"source"},{"type":"string","optional":false,"field":"op"}],"optional":false,"name":"s.t.Envelope"}`
	value := []byte(`{"schema":` + schema + `,"payload":{"after":{"id":1},"source":{"schema":"public","table":"t"},"op":"c"}}`)
	for _, kp := range []string{`{}`, `{"x":1}`, `{`} {
		key := []byte(`{"schema":{"type":"struct","fields":[],"optional":false,"name":"s.t.Key"},"payload":` + kp + `}`)
		j := NewJSON()
		want, errFull := j.decode(key, value, false)
		if _, err := j.Decode(key, value); (err == nil) != (errFull == nil) { // learns the schemas
			t.Fatalf("key %s: Decode error %v, full decode error %v", kp, err, errFull)
		}
		got, ok := j.tryFast(key, value)
		if ok && errFull != nil {
			t.Fatalf("key %s: fast path took what the full decode rejects: %v", kp, errFull)
		}
		if ok {
			if d := cmp.Diff(want, got, cmpOpts...); d != "" {
				t.Errorf("key %s: fast path differs (-full +fast):\n%s", kp, d)
			}
		}
	}
}

func TestIsJSONNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"0", true}, {"-0", true}, {"7", true}, {"123", true}, {"-123", true},
		{"1.5", true}, {"0.25", true}, {"1e5", true}, {"1E+5", true}, {"-2.5e-3", true},
		{"", false}, {"-", false}, {"01", false}, {"-01", false}, {"+1", false},
		{"1.", false}, {".5", false}, {"1e", false}, {"1e+", false}, {"1.e5", false},
		{"NaN", false}, {"nan", false}, {"inf", false}, {"-inf", false}, {"1-2", false},
		{"1e5.5", false}, {"--1", false}, {"0x10", false},
	} {
		if got := isJSONNumber([]byte(tc.in)); got != tc.want {
			t.Errorf("isJSONNumber(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestFastPathLenientNumbers checks that numbers fastjson's parser takes
// and JSON does not send an unescaped payload to the full decode, which
// rejects them, wherever they are (a member the fast path reads or not).
func TestFastPathLenientNumbers(t *testing.T) {
	j := newCodec(true)
	r := allCases()[slices.Sorted(maps.Keys(allCases()))[0]]
	// Without escapes, which would have the whole payload validated
	// first (the source's sequence is a JSON array in a string).
	r.Source.Extra = maps.Clone(r.Source.Extra)
	delete(r.Source.Extra, "sequence")
	key, err1 := j.EncodeKey(r)
	value, err2 := j.EncodeValue(r)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Decode(key, value); err != nil {
		t.Fatal(err)
	}
	vs, payload, ok := j.known.split(value)
	if !ok {
		t.Fatal("schema not known after a full decode")
	}
	if bytes.IndexByte(payload, '\\') >= 0 {
		t.Fatalf("payload has escapes: %s", payload)
	}
	for _, bad := range []string{"01", "1.", "NaN", "inf", "+1", "-"} {
		for _, p := range []string{
			strings.Replace(string(payload), `"op":`, `"ts_ms":`+bad+`,"op":`, 1),
			strings.Replace(string(payload), `"op":`, `"extra":[1,{"x":`+bad+`}],"op":`, 1),
			// read members: a row's column, a source and a transaction member
			strings.Replace(string(payload), `"op":`, `"after":{"id":`+bad+`},"op":`, 1),
			strings.Replace(string(payload), `"source":{`, `"source":{"ts_ms":`+bad+`,`, 1),
			strings.Replace(string(payload), `"source":{`, `"source":{"lsn":`+bad+`,`, 1),
			strings.Replace(string(payload), `"op":`, `"transaction":{"id":"7","total_order":`+bad+`},"op":`, 1),
			// members not read: an earlier duplicate, a known source member
			// the fast path skips, an unknown transaction member
			strings.Replace(string(payload), `{`, `{"after":{"x":`+bad+`},`, 1),
			strings.Replace(string(payload), `{`, `{"op":`+bad+`,`, 1),
			strings.Replace(string(payload), `"source":{`, `"source":{"version":`+bad+`,`, 1),
			strings.Replace(string(payload), `"op":`, `"transaction":{"id":"7","total_order":1,"data_collection_order":`+bad+`},"op":`, 1),
			strings.Replace(string(payload), `"op":`, `"transaction":{"total_order":`+bad+`,"id":"7","total_order":1},"op":`, 1),
		} {
			msg := []byte(`{"schema":` + string(vs) + `,"payload":` + p + `}`)
			if _, ok := j.tryFast(key, msg); ok {
				t.Errorf("fast path took %s", p)
			}
			if _, err := j.Decode(key, msg); err == nil {
				t.Errorf("Decode took %s", p)
			}
		}
	}
}
