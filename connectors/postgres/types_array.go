package postgres

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// maxArrayDims is PostgreSQL's MAXDIM.
const maxArrayDims = 6

// parseArray reads an array literal ("{1,2,NULL}", "{{1,2},{3,4}}",
// `{"a b","c\"d"}`, "{}") into []any of parsed elements; nested arrays are
// nested []any. An unquoted NULL is SQL NULL, a quoted "NULL" the text. A
// dimension decoration ("[0:1]={1,2}") is accepted and its lower bounds
// are dropped.
func parseArray(col cdc.Column, s string) ([]any, error) {
	elem := cdc.Column{Kind: col.Elem, EnumValues: col.EnumValues, SourceType: strings.TrimSuffix(col.SourceType, "[]")}
	return parseArrayLiteral(s, arrayDelim(col), func(text string) (any, error) {
		return parseKind(elem, text)
	})
}

// arrayDelim returns the element delimiter: ';' for box, the only built-in
// type whose typdelim is not ','.
func arrayDelim(col cdc.Column) byte {
	if strings.HasPrefix(col.SourceType, "box[") {
		return ';'
	}
	return ','
}

var errArray = errors.New("malformed array literal")

// parseArrayLiteral parses an array literal, turning each non-NULL element
// text into a value with elem.
func parseArrayLiteral(s string, delim byte, elem func(string) (any, error)) ([]any, error) {
	p := arrayParser{s: s, delim: delim, elem: elem}
	if err := p.dimensions(); err != nil {
		return nil, err
	}
	p.space()
	out, err := p.array(1)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(s) {
		return nil, fmt.Errorf("%w: junk after the closing brace", errArray)
	}
	return out, nil
}

type arrayParser struct {
	s     string
	i     int
	delim byte
	elem  func(string) (any, error)
}

// dimensions skips a "[1:2][0:3]=" decoration.
func (p *arrayParser) dimensions() error {
	if !strings.HasPrefix(p.s, "[") {
		return nil
	}
	for p.i < len(p.s) && p.s[p.i] == '[' {
		end := strings.IndexByte(p.s[p.i:], ']')
		if end < 0 {
			return fmt.Errorf("%w: unterminated dimension", errArray)
		}
		lo, hi, ok := strings.Cut(p.s[p.i+1:p.i+end], ":")
		if !ok || !isInt(lo) || !isInt(hi) {
			return fmt.Errorf("%w: bad dimension %q", errArray, p.s[p.i:p.i+end+1])
		}
		p.i += end + 1
	}
	if p.i >= len(p.s) || p.s[p.i] != '=' {
		return fmt.Errorf("%w: want '=' after dimensions", errArray)
	}
	p.i++
	return nil
}

func isInt(s string) bool {
	s = strings.TrimPrefix(s, "-")
	return s != "" && allDigits(s)
}

func (p *arrayParser) space() {
	for p.i < len(p.s) && isArraySpace(p.s[p.i]) {
		p.i++
	}
}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// array reads "{...}" at p.i.
func (p *arrayParser) array(depth int) ([]any, error) {
	if depth > maxArrayDims {
		return nil, fmt.Errorf("%w: more than %d dimensions", errArray, maxArrayDims)
	}
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, fmt.Errorf("%w: want '{' at %d", errArray, p.i)
	}
	p.i++
	out := []any{}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return out, nil
	}
	for {
		p.space()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("%w: unterminated", errArray)
		}
		var v any
		var err error
		switch p.s[p.i] {
		case '{':
			v, err = p.array(depth + 1)
		case '"':
			v, err = p.quoted()
		default:
			v, err = p.unquoted()
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.space()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("%w: unterminated", errArray)
		}
		switch c := p.s[p.i]; {
		case c == p.delim:
			p.i++
		case c == '}':
			p.i++
			return out, nil
		default:
			return nil, fmt.Errorf("%w: unexpected %q at %d", errArray, c, p.i)
		}
	}
}

// quoted reads a double-quoted element; backslash escapes any byte.
func (p *arrayParser) quoted() (any, error) {
	var b strings.Builder
	for p.i++; p.i < len(p.s); p.i++ {
		switch c := p.s[p.i]; c {
		case '\\':
			p.i++
			if p.i >= len(p.s) {
				return nil, fmt.Errorf("%w: unterminated quote", errArray)
			}
			b.WriteByte(p.s[p.i])
		case '"':
			p.i++
			return p.value(b.String())
		default:
			b.WriteByte(c)
		}
	}
	return nil, fmt.Errorf("%w: unterminated quote", errArray)
}

// unquoted reads an element up to the delimiter or closing brace; trailing
// unescaped white space is dropped, and a bare NULL is SQL NULL.
func (p *arrayParser) unquoted() (any, error) {
	var b strings.Builder
	escaped, keep := false, 0 // keep: length of b up to the last escaped byte
	for ; p.i < len(p.s); p.i++ {
		c := p.s[p.i]
		if c == p.delim || c == '}' {
			break
		}
		switch {
		case c == '\\':
			p.i++
			if p.i >= len(p.s) {
				return nil, fmt.Errorf("%w: trailing backslash", errArray)
			}
			b.WriteByte(p.s[p.i])
			escaped, keep = true, b.Len()
		case c == '{' || c == '"':
			return nil, fmt.Errorf("%w: unexpected %q at %d", errArray, c, p.i)
		default:
			b.WriteByte(c)
		}
	}
	text := b.String()
	end := len(text)
	for end > keep && isArraySpace(text[end-1]) {
		end--
	}
	text = text[:end]
	if text == "" {
		return nil, fmt.Errorf("%w: empty element at %d", errArray, p.i)
	}
	if !escaped && strings.EqualFold(text, "NULL") {
		return nil, nil
	}
	return p.value(text)
}

func (p *arrayParser) value(text string) (any, error) {
	v, err := p.elem(text)
	if err != nil {
		return nil, fmt.Errorf("array element: %w", err)
	}
	return v, nil
}

// formatArray writes xs as an array literal with every element quoted.
func formatArray(col cdc.Column, xs []any) (string, error) {
	elem := cdc.Column{Kind: col.Elem, EnumValues: col.EnumValues, SourceType: strings.TrimSuffix(col.SourceType, "[]")}
	var b strings.Builder
	err := appendArrayLiteral(&b, xs, arrayDelim(col), 1, func(v any) (string, error) {
		return formatText(elem, v)
	})
	return b.String(), err
}

func appendArrayLiteral(b *strings.Builder, xs []any, delim byte, depth int, elem func(any) (string, error)) error {
	if depth > maxArrayDims {
		return fmt.Errorf("array has more than %d dimensions", maxArrayDims)
	}
	b.WriteByte('{')
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(delim)
		}
		switch v := x.(type) {
		case nil:
			b.WriteString("NULL")
		case []any:
			if err := appendArrayLiteral(b, v, delim, depth+1, elem); err != nil {
				return err
			}
		default:
			text, err := elem(v)
			if err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
			b.WriteByte('"')
			for j := 0; j < len(text); j++ {
				if text[j] == '"' || text[j] == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(text[j])
			}
			b.WriteByte('"')
		}
	}
	b.WriteByte('}')
	return nil
}
