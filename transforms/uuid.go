package transforms

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// uuid5 returns the version 5 UUID of a namespace and a name: namespace
// is a UUID, or any other text, which stands for uuid5(nil UUID, text).
// parts is one value or a list of them: a list is joined with "/", each
// part's "\" and "/" escaped with "\". A NULL part gives "" (NULL).
func uuid5(namespace string, parts any) (string, error) {
	list, isList := parts.([]any)
	if !isList {
		list = []any{parts}
	}
	var name strings.Builder
	for i, p := range list {
		if p == nil {
			return "", nil
		}
		switch p.(type) {
		case []any, map[string]any:
			return "", fmt.Errorf("uuid5: part %d is a %s; want a scalar", i, goKind(p))
		}
		if i > 0 {
			name.WriteByte('/')
		}
		s := text(p, cdc.KindUnknown)
		if isList {
			s = strings.NewReplacer(`\`, `\\`, `/`, `\/`).Replace(s)
		}
		name.WriteString(s)
	}
	return formatUUID(uuid5Bytes(namespaceUUID(namespace), name.String())), nil
}

func namespaceUUID(ns string) []byte {
	if u, err := toUUID(ns); err == nil {
		b, _ := hex.DecodeString(strings.ReplaceAll(u.(string), "-", ""))
		return b
	}
	return uuid5Bytes(make([]byte, 16), ns)
}

// uuid5Bytes is RFC 9562's name-based UUID with SHA-1.
func uuid5Bytes(ns []byte, name string) []byte {
	h := sha1.New()
	h.Write(ns)
	h.Write([]byte(name))
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return b
}
