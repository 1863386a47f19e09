package stagetest

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// Test is one test of a pipeline's tests block.
type Test struct {
	Name string
	Line int
	// Input is the record the chain is given.
	Input cdc.Record
	// Expect lists the records the chain must return, in order (empty:
	// none); ExpectError, when set, is a substring of the error it must
	// return instead.
	Expect      []Expected
	ExpectError string
}

// Expected is an expected output record: only what it gives is compared.
type Expected struct {
	Line  int
	Op    *cdc.Op
	Table *cdc.TableID
	// Rows are "key", "before" and "after"; a nil *yaml.Node stands for
	// null (no such image).
	Rows map[string]*yaml.Node
}

// maxNodes bounds the nodes a tests block may expand to through aliases.
const (
	maxNodes = 100000
	maxDepth = 64
)

// parser reads a tests block, collecting errors as *spec.FieldError.
type parser struct {
	errs  []error
	nodes int
}

func (p *parser) fail(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if n != nil && n.Line > 0 {
		msg += fmt.Sprintf(" (line %d)", n.Line)
	}
	p.errs = append(p.errs, &spec.FieldError{Path: path, Msg: msg})
}

// Parse reads the tests of a pipeline. defaultTable is the input table
// when a test does not name one.
func Parse(block *yaml.Node, defaultTable string) ([]Test, error) {
	p := &parser{}
	tests := p.tests(block, defaultTable)
	if len(p.errs) > 0 {
		return nil, joinErrs(p.errs)
	}
	// A record carries the schema of its whole table; an input gives some
	// fields only (a delete, the key). A table's columns are those that
	// any test gives it.
	tables := map[cdc.TableID][]cdc.Column{}
	for _, t := range tests {
		tables[t.Input.Table] = mergeColumns(tables[t.Input.Table], t.Input.Schema.Columns)
	}
	for i := range tests {
		s := tests[i].Input.Schema
		s.Columns = mergeColumns(slices.Clone(s.Columns), tables[s.Table])
	}
	return tests, nil
}

func (p *parser) tests(block *yaml.Node, defaultTable string) []Test {
	block = resolve(block)
	if block.Kind == 0 || isNull(block) {
		return nil
	}
	if block.Kind != yaml.SequenceNode {
		p.fail(block, "tests", "want a list of tests")
		return nil
	}
	var tests []Test
	names := map[string]int{}
	for i, n := range block.Content {
		path := fmt.Sprintf("tests[%d]", i)
		t := Test{Line: resolve(n).Line}
		fields := p.mapping(n, path, "name", "input", "expect", "expect_error")
		if fields == nil {
			continue
		}
		if name := fields["name"]; name == nil || name.Kind != yaml.ScalarNode || name.Value == "" {
			p.fail(n, path+".name", "want the test's name")
		} else {
			t.Name = name.Value
			if first, dup := names[t.Name]; dup {
				p.fail(name, path+".name", "duplicate of tests[%d].name", first)
			}
			names[t.Name] = i
		}
		if fields["input"] == nil {
			p.fail(n, path+".input", "required")
		} else {
			t.Input = p.input(fields["input"], path+".input", defaultTable)
		}
		exp, expErr := fields["expect"], fields["expect_error"]
		switch {
		case (exp == nil) == (expErr == nil):
			p.fail(n, path, "want one of expect or expect_error")
		case expErr != nil:
			if expErr.Kind != yaml.ScalarNode || expErr.Value == "" {
				p.fail(expErr, path+".expect_error", "want a part of the error message")
			}
			t.ExpectError = expErr.Value
		case exp.Kind != yaml.SequenceNode:
			p.fail(exp, path+".expect", "want a list of records ([] for none)")
		default:
			for j, e := range exp.Content {
				t.Expect = append(t.Expect, p.expected(e, fmt.Sprintf("%s.expect[%d]", path, j)))
			}
		}
		tests = append(tests, t)
	}
	return tests
}

// mapping returns the fields of a mapping node, reporting unknown and
// duplicate ones; nil when n is not a mapping.
func (p *parser) mapping(n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "want a mapping")
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		switch _, dup := out[k.Value]; {
		case !slices.Contains(known, k.Value):
			p.fail(k, path+"."+k.Value, "unknown field (want %s)", strings.Join(known, ", "))
		case dup:
			p.fail(k, path+"."+k.Value, "duplicate field")
		default:
			out[k.Value] = resolve(n.Content[i+1])
		}
	}
	return out
}

func (p *parser) input(n *yaml.Node, path, defaultTable string) cdc.Record {
	var r cdc.Record
	f := p.mapping(n, path, "op", "table", "key", "before", "after", "source")
	if f == nil {
		return r
	}
	if op := f["op"]; op == nil {
		p.fail(n, path+".op", "required (r, c, u or d)")
	} else if o, err := cdc.ParseOp(op.Value); err != nil || o == cdc.OpTruncate {
		p.fail(op, path+".op", "want r, c, u or d")
	} else {
		r.Op = o
	}
	table := defaultTable
	if t := f["table"]; t != nil {
		table = t.Value
	}
	if id, err := cdc.ParseTableID(table, spec.DefaultSchema); err != nil {
		p.fail(n, path+".table", "%v", err)
	} else {
		r.Table = id
	}
	var cols []cdc.Column
	row := func(name string) cdc.Row {
		x := f[name]
		if x == nil || isNull(x) {
			return nil
		}
		out, c := p.row(x, path+"."+name)
		cols = mergeColumns(cols, c)
		return out
	}
	r.Key, r.After, r.Before = row("key"), row("after"), row("before")
	var key []string
	if k := f["key"]; k != nil && k.Kind == yaml.MappingNode {
		for i := 0; i < len(k.Content); i += 2 {
			key = append(key, k.Content[i].Value)
		}
	} else if img := firstImage(r); img != nil {
		if id, ok := img["id"]; ok { // the usual primary key
			r.Key, key = cdc.Row{"id": id}, []string{"id"}
		}
	}
	switch {
	case (r.Op == cdc.OpCreate || r.Op == cdc.OpRead || r.Op == cdc.OpUpdate) && r.After == nil:
		p.fail(n, path+".after", "required for op %s", r.Op)
	case r.Op == cdc.OpDelete && r.Before == nil && r.Key == nil:
		p.fail(n, path+".before", "a delete needs before or key")
	}
	r.Schema = &cdc.TableSchema{Table: r.Table, Columns: cols, Key: key}
	if s := f["source"]; s != nil {
		p.source(s, path+".source", &r)
	}
	return r
}

func firstImage(r cdc.Record) cdc.Row {
	if r.After != nil {
		return r.After
	}
	return r.Before
}

// source fills the source block and commit time of r.
func (p *parser) source(n *yaml.Node, path string, r *cdc.Record) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "want a mapping")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]).Value, resolve(n.Content[i+1])
		val, err := p.value(v, 0)
		if err != nil {
			p.fail(v, path+"."+k, "%v", err)
			continue
		}
		switch k {
		case "connector":
			r.Source.Connector = fmt.Sprint(val)
		case "name":
			r.Source.Name = fmt.Sprint(val)
		case "db":
			r.Source.DB = fmt.Sprint(val)
		case "snapshot":
			r.Source.Snapshot = fmt.Sprint(val)
		case "txId":
			r.TxID = fmt.Sprint(val)
		case "ts_ms":
			ms, ok := val.(int64)
			if !ok {
				p.fail(v, path+".ts_ms", "want milliseconds since 1970")
				continue
			}
			r.CommitTime = time.UnixMilli(ms).UTC()
		default:
			if r.Source.Extra == nil {
				r.Source.Extra = map[string]any{}
			}
			r.Source.Extra[k] = val
		}
	}
}

// row reads a row: field names to values, and the columns they imply.
func (p *parser) row(n *yaml.Node, path string) (cdc.Row, []cdc.Column) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "want a mapping of fields to values")
		return nil, nil
	}
	row := cdc.Row{}
	var cols []cdc.Column
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if _, dup := row[k.Value]; dup {
			p.fail(k, path+"."+k.Value, "duplicate field")
			continue
		}
		val, err := p.value(v, 0)
		if err != nil {
			p.fail(v, path+"."+k.Value, "%v", err)
			continue
		}
		row[k.Value] = val
		kind, elem := kindOf(resolve(v), val)
		cols = append(cols, cdc.Column{Name: k.Value, Kind: kind, Elem: elem, Nullable: true})
	}
	return row, cols
}

// mergeColumns adds the columns of b that a lacks; a column whose kind a
// does not know (from a null) takes b's.
func mergeColumns(a, b []cdc.Column) []cdc.Column {
	for _, c := range b {
		i := slices.IndexFunc(a, func(x cdc.Column) bool { return x.Name == c.Name })
		switch {
		case i < 0:
			a = append(a, c)
		case a[i].Kind == cdc.KindUnknown:
			a[i] = c
		}
	}
	return a
}

func (p *parser) expected(n *yaml.Node, path string) Expected {
	e := Expected{Line: resolve(n).Line, Rows: map[string]*yaml.Node{}}
	f := p.mapping(n, path, "op", "table", "key", "before", "after")
	if f == nil {
		return e
	}
	if op := f["op"]; op != nil {
		o, err := cdc.ParseOp(op.Value)
		if err != nil {
			p.fail(op, path+".op", "want r, c, u, d or t")
		}
		e.Op = &o
	}
	if t := f["table"]; t != nil {
		id, err := cdc.ParseTableID(t.Value, spec.DefaultSchema)
		if err != nil {
			p.fail(t, path+".table", "%v", err)
		}
		e.Table = &id
	}
	for _, name := range []string{"key", "before", "after"} {
		x, ok := f[name]
		if !ok {
			continue
		}
		if isNull(x) {
			e.Rows[name] = nil
			continue
		}
		if x.Kind != yaml.MappingNode {
			p.fail(x, path+"."+name, "want a mapping of fields to values, or null")
			continue
		}
		// Check the values parse now, so that a typo is a spec error.
		for i := 1; i < len(x.Content); i += 2 {
			if _, err := p.value(x.Content[i], 0); err != nil {
				p.fail(x.Content[i], path+"."+name+"."+x.Content[i-1].Value, "%v", err)
			}
		}
		e.Rows[name] = x
	}
	return e
}
