package debezium

import (
	"errors"
	"unicode/utf8"
)

// errInvalidUTF8 is returned for text that JSON cannot carry without loss.
var errInvalidUTF8 = errors.New("text is not valid UTF-8")

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 is an error rather
// than being replaced with U+FFFD as encoding/json does: a replaced byte
// would silently change the data.
func appendString(b []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return b, errInvalidUTF8
	}
	return appendValidString(b, s), nil
}

// appendValidString appends s, which must be valid UTF-8, as a JSON string.
func appendValidString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendKey appends `"name":`.
func appendKey(b []byte, name string) []byte {
	return append(appendValidString(b, name), ':')
}
