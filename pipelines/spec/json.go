package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// JSON is read with encoding/json rather than as YAML: YAML parsers do not
// accept all of JSON (yaml.v3 rejects the escape \/ and surrogate pairs).
// The tokens are turned into yaml.Node trees, with lines, so one strict
// decoder serves both formats.

// maxJSONDepth bounds the nesting of a JSON document.
const maxJSONDepth = 100

// jsonDocuments returns a node tree for every JSON value in data (a stream
// of values is a stream of documents). On a syntax error it returns the
// documents before it.
func jsonDocuments(data []byte) ([]*yaml.Node, error) {
	j := &jsonReader{dec: json.NewDecoder(bytes.NewReader(data)), lines: lineStarts(data)}
	j.dec.UseNumber()
	var roots []*yaml.Node
	for {
		tok, err := j.dec.Token()
		if errors.Is(err, io.EOF) {
			return roots, nil
		}
		if err != nil {
			return roots, j.wrap(err)
		}
		root, err := j.value(tok, 0)
		if err != nil {
			return roots, j.wrap(err)
		}
		roots = append(roots, root)
	}
}

type jsonReader struct {
	dec   *json.Decoder
	lines []int64 // offsets at which lines start
}

// line returns the 1-based line of the last token read.
func (j *jsonReader) line() int {
	off := j.dec.InputOffset() - 1
	return sort.Search(len(j.lines), func(i int) bool { return j.lines[i] > off })
}

func (j *jsonReader) wrap(err error) error {
	if errors.Is(err, io.EOF) { // inside a value
		err = io.ErrUnexpectedEOF
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		l := sort.Search(len(j.lines), func(i int) bool { return j.lines[i] >= se.Offset })
		return fmt.Errorf("json: line %d: %w", l, err)
	}
	return fmt.Errorf("json: line %d: %w", len(j.lines), err)
}

// value turns tok, and for '{' and '[' the tokens up to the matching
// close, into a node.
func (j *jsonReader) value(tok json.Token, depth int) (*yaml.Node, error) {
	n := &yaml.Node{Kind: yaml.ScalarNode, Line: j.line()}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxJSONDepth {
			return nil, fmt.Errorf("nested deeper than %d", maxJSONDepth)
		}
		n.Kind, n.Tag, n.Style = yaml.SequenceNode, "!!seq", yaml.FlowStyle
		if t == '{' {
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
		}
		for j.dec.More() {
			tok, err := j.dec.Token()
			if err != nil {
				return nil, err
			}
			c, err := j.value(tok, depth+1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		if _, err := j.dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
	case string:
		n.Tag, n.Value, n.Style = "!!str", t, yaml.DoubleQuotedStyle
	case json.Number:
		n.Tag, n.Value = "!!int", t.String()
		if strings.ContainsAny(n.Value, ".eE") {
			n.Tag = "!!float"
		}
	case bool:
		n.Tag, n.Value = "!!bool", fmt.Sprint(t)
	case nil:
		n.Tag, n.Value = "!!null", "null"
	}
	return n, nil
}

// lineStarts returns the offsets at which the lines of data start.
func lineStarts(data []byte) []int64 {
	starts := []int64{0}
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, int64(i+1))
		}
	}
	return starts
}
