package transforms

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// newMask compiles a mask stage: each field's text has its characters
// replaced, except the first KeepFirst and the last KeepLast. The fields
// become strings; NULL stays NULL.
func newMask(cfg *spec.MaskStage) Stage {
	char := '*'
	if cfg.Char != "" {
		char, _ = utf8.DecodeRuneInString(cfg.Char)
	}
	return stringFields(cfg.Fields, func(v any) string {
		return mask(text(v, cdc.KindUnknown), char, cfg.KeepFirst, cfg.KeepLast)
	})
}

// stringFields writes each field as the string f makes of its value;
// absent stays absent and NULL stays NULL.
func stringFields(fields []string, f func(v any) string) *fieldWriter {
	w := &fieldWriter{}
	for _, name := range fields {
		w.ops = append(w.ops, fieldOp{
			field:  name,
			column: freshColumn(cdc.KindString, 0),
			value: func(_ context.Context, _ *cdc.Record, img cdc.Row, _ any, _ cdc.Column) (any, bool, error) {
				v, ok := img[name]
				if !ok || v == nil {
					return nil, ok, nil
				}
				return f(v), true, nil
			},
		})
	}
	return w
}

// mask replaces the runes of s by char, except the first first and the
// last last ones.
func mask(s string, char rune, first, last int) string {
	runes := []rune(s)
	for i := range runes {
		if i >= first && i < len(runes)-last {
			runes[i] = char
		}
	}
	return string(runes)
}

// hashStage replaces fields by the hex HMAC-SHA256 of their text under a
// secret salt: equal values give equal hashes, so they still join, but the
// values cannot be recovered, nor guessed without the salt.
type hashStage struct {
	*fieldWriter
}

// newHash resolves the salt (on the worker; the value is never printed),
// unless only checking.
func newHash(cfg *spec.HashStage, path string, check bool) (Stage, error) {
	salt := "unresolved"
	if !check {
		var err error
		if salt, err = spec.Resolve(cfg.Salt); err != nil {
			return nil, &spec.FieldError{Path: path + ".salt", Msg: err.Error()}
		}
	}
	if salt == "" {
		return nil, &spec.FieldError{Path: path + ".salt", Msg: "the salt is empty"}
	}
	key := []byte(salt)
	return &hashStage{stringFields(cfg.Fields, func(v any) string {
		m := hmac.New(sha256.New, key)
		if b, isBytes := v.([]byte); isBytes {
			m.Write(b)
		} else {
			m.Write([]byte(text(v, cdc.KindUnknown)))
		}
		return hex.EncodeToString(m.Sum(nil))
	})}, nil
}

// String keeps the salt out of any print of the stage.
func (h *hashStage) String() string { return "hash stage" }
