package debezium

import (
	"fmt"
	"unicode/utf8"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// colCodec is one column ready for encoding.
type colCodec struct {
	name       string
	key        []byte // `"name":`
	kind, elem cdc.Kind
}

// tableCodec is what the codec derives once from a TableSchema.
type tableCodec struct {
	cols    []colCodec
	keyCols []colCodec
	// keySchema is the complete key schema.
	keySchema []byte
	// rowSchema is the before/after struct schema without its "field" and
	// closing brace: {"type":"struct","fields":[...],"optional":true,"name":"p.Value"
	rowSchema []byte
	// envelopeName is the quoted envelope schema name.
	envelopeName []byte
}

// schemaPrefix returns "<server>.<schema>.<table>", leaving out empty parts.
func schemaPrefix(server string, t cdc.TableID) string {
	p := ""
	for _, s := range []string{server, t.Schema, t.Name} {
		if s == "" {
			continue
		}
		if p != "" {
			p += "."
		}
		p += s
	}
	return p
}

func newTableCodec(s *cdc.TableSchema, server string) (*tableCodec, error) {
	prefix := schemaPrefix(server, s.Table)
	if !utf8.ValidString(prefix) {
		return nil, fmt.Errorf("schema name %q: %w", prefix, errInvalidUTF8)
	}
	t := &tableCodec{cols: make([]colCodec, len(s.Columns))}
	seen := make(map[string]int, len(s.Columns))
	rs := []byte(`{"type":"struct","fields":[`)
	var err error
	for i := range s.Columns {
		c := &s.Columns[i]
		if err := validColumn(c); err != nil {
			return nil, err
		}
		if _, dup := seen[c.Name]; dup {
			return nil, fmt.Errorf("column %q appears twice", c.Name)
		}
		seen[c.Name] = i
		t.cols[i] = colCodec{name: c.Name, key: appendKey(nil, c.Name), kind: c.Kind, elem: c.Elem}
		if i > 0 {
			rs = append(rs, ',')
		}
		if rs, err = appendColumnSchema(rs, c); err != nil {
			return nil, err
		}
	}
	rs = append(rs, `],"optional":true,"name":`...)
	t.rowSchema = appendValidString(rs, prefix+".Value")
	t.envelopeName = appendValidString(nil, prefix+".Envelope")

	ks := []byte(`{"type":"struct","fields":[`)
	for i, name := range s.Key {
		ci, ok := seen[name]
		if !ok {
			return nil, fmt.Errorf("key column %q is not in the schema", name)
		}
		if hasColumn(t.keyCols, name) {
			return nil, fmt.Errorf("key column %q appears twice", name)
		}
		t.keyCols = append(t.keyCols, t.cols[ci])
		if i > 0 {
			ks = append(ks, ',')
		}
		if ks, err = appendColumnSchema(ks, &s.Columns[ci]); err != nil {
			return nil, err
		}
	}
	ks = append(ks, `],"optional":false,"name":`...)
	ks = appendValidString(ks, prefix+".Key")
	t.keySchema = append(ks, '}')
	return t, nil
}

// validColumn checks the text of a column's description: it is written into
// schemas without further checks.
func validColumn(c *cdc.Column) error {
	if !utf8.ValidString(c.Name) {
		return fmt.Errorf("column name %q: %w", c.Name, errInvalidUTF8)
	}
	if !utf8.ValidString(c.SourceType) {
		return fmt.Errorf("column %q: source type: %w", c.Name, errInvalidUTF8)
	}
	for _, l := range c.EnumValues {
		if !utf8.ValidString(l) {
			return fmt.Errorf("column %q: enum label %q: %w", c.Name, l, errInvalidUTF8)
		}
	}
	return nil
}
