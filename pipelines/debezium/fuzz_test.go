package debezium

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode checks that Decode never panics and that a record it accepted
// with schemas encodes again and decodes to the same record.
func FuzzDecode(f *testing.F) {
	for _, schemas := range []bool{true, false} {
		codec := newCodec(schemas)
		for _, r := range allCases() {
			key, err := codec.EncodeKey(r)
			if err != nil {
				f.Fatal(err)
			}
			value, err := codec.EncodeValue(r)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(key, value)
		}
	}
	codec := newCodec(true)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		r, err := codec.Decode(key, value)
		if err != nil {
			return
		}
		if vs, _, _ := split(value); vs == nil {
			return
		}
		key2, err := codec.EncodeKey(r)
		if err != nil {
			t.Fatalf("EncodeKey of decoded record: %v\nkey: %s\nvalue: %s", err, key, value)
		}
		value2, err := codec.EncodeValue(r)
		if err != nil {
			t.Fatalf("EncodeValue of decoded record: %v\nkey: %s\nvalue: %s", err, key, value)
		}
		r2, err := codec.Decode(key2, value2)
		if err != nil {
			t.Fatalf("Decode of re-encoded record: %v\nvalue: %s", err, value2)
		}
		if diff := cmp.Diff(r, r2, cmpOpts...); diff != "" {
			t.Fatalf("re-decoded record differs (-first +second):\n%s\nvalue: %s", diff, value)
		}
	})
}
