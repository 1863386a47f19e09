package spec

// quoteRefs returns data with every unquoted secret reference that is a
// whole value ("dsn: ${env:X}", "[${file:/a}, b]") put in single quotes.
//
// DESIGN.md writes `postgres: {dsn: ${env:ELMIS_DSN}, ...}`, and so do
// users. Strict YAML forbids "{" and "}" in a plain scalar inside a flow
// collection, so that is a syntax error, although its meaning is plain.
// Quoting such references before parsing accepts what people write without
// changing any valid document's meaning: in block context the quoted
// scalar is the same string. References inside quoted scalars, comments,
// or in the middle of a longer value are left as they are. Line numbers do
// not change.
func quoteRefs(data []byte) []byte {
	var out []byte // nil until something changes
	last := 0      // data[last:] not yet copied to out
	var quote byte // the quote character of the scalar we are in, or 0
	comment := false
	prev := byte('\n') // the last significant byte outside scalars
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\n':
			comment = false
			if quote == 0 {
				prev = '\n'
			}
			continue
		case comment:
			continue
		case quote != 0:
			switch {
			case quote == '"' && c == '\\':
				i++
			case c == quote && quote == '\'' && i+1 < len(data) && data[i+1] == '\'':
				i++
			case c == quote:
				quote, prev = 0, 'x'
			}
			continue
		case c == ' ' || c == '\t':
			continue
		case c == '#' && (i == 0 || data[i-1] == ' ' || data[i-1] == '\t' || data[i-1] == '\n'):
			comment = true
			continue
		case (c == '"' || c == '\'') && startsValue(prev):
			quote = c
			continue
		case c == '$' && i+1 < len(data) && data[i+1] == '{' && startsValue(prev):
			end := refEnd(data, i)
			if end < 0 || !endsValue(data, end) {
				break
			}
			ref := data[i:end]
			out = append(out, data[last:i]...)
			out = append(out, '\'')
			for _, b := range ref {
				if b == '\'' {
					out = append(out, '\'')
				}
				out = append(out, b)
			}
			out = append(out, '\'')
			last, i, prev = end, end-1, 'x'
			continue
		}
		prev = c
	}
	if out == nil {
		return data
	}
	return append(out, data[last:]...)
}

// startsValue reports whether a scalar may start after the byte prev.
func startsValue(prev byte) bool {
	switch prev {
	case '\n', ':', ',', '[', '{', '-', '?':
		return true
	}
	return false
}

// refEnd returns the index just after the "}" closing the reference that
// starts at data[i] ("${"), or -1 if it does not close on its line.
func refEnd(data []byte, i int) int {
	for j := i + 2; j < len(data) && data[j] != '\n'; j++ {
		switch data[j] {
		case '}':
			return j + 1
		case '{':
			return -1
		}
	}
	return -1
}

// endsValue reports whether a scalar may end at data[j]: only blanks
// follow before a flow indicator, a comment or the end of the line.
func endsValue(data []byte, j int) bool {
	for ; j < len(data); j++ {
		switch data[j] {
		case ' ', '\t':
			continue
		case '\n', '\r', ',', '}', ']', '#':
			return true
		}
		return false
	}
	return true
}
