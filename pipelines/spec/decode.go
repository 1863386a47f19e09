package spec

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Why not yaml.v3's Decoder.KnownFields: it reports an unknown field as
// "line 3: field x not found in type spec.Postgres", with no field path,
// and it can only be read as text. The walker below decodes each document's
// node tree into the spec struct itself, following the yaml struct tags,
// so every error carries a path and a line, and all of them are reported.

// fieldAt is a problem and the line it is on (0 if unknown).
type fieldAt struct {
	err  *FieldError
	line int
}

// decodeDocument decodes one document and validates it. The spec is nil
// when the document's kind is missing or unknown.
func decodeDocument(root *yaml.Node) (Spec, []fieldAt) {
	d := &decoder{lines: map[string]int{"": root.Line}}
	root = resolve(root)
	if root.Kind != yaml.MappingNode {
		d.fail(root, "", "want a mapping with a kind field, got %s", nodeDesc(root))
		return nil, d.errs
	}
	var kindNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "kind" {
			kindNode = resolve(root.Content[i+1])
		}
	}
	if kindNode == nil {
		d.fail(root, "kind", "required (one of %s, %s)", KindSource, KindPipeline)
		return nil, d.errs
	}
	s, ok := newSpec(Kind(kindNode.Value))
	if kindNode.Kind != yaml.ScalarNode || !ok {
		d.fail(kindNode, "kind", "unknown kind %q (want %s or %s)", kindNode.Value, KindSource, KindPipeline)
		return nil, d.errs
	}
	d.mapping(root, "", reflect.ValueOf(s).Elem(), "kind")
	bad := make([]string, len(d.errs))
	for i, e := range d.errs {
		bad[i] = e.err.Path
	}
	// A field that did not decode also fails validation (a list of the
	// wrong type is left empty, then "required"): report it once.
	for _, fe := range FieldErrors(s.Validate()) {
		if !under(fe.Path, bad) {
			d.errs = append(d.errs, fieldAt{fe, d.line(fe.Path)})
		}
	}
	return s, d.errs
}

// under reports whether path is one of paths or inside one of them.
func under(path string, paths []string) bool {
	for _, p := range paths {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

// maxMerged bounds the fields that merge keys may bring into a document:
// nested merges of aliases can otherwise grow exponentially.
const maxMerged = 10000

// maxDepth and maxNodes bound the walk: split stages nest, and an alias
// may refer to a node that contains it, or repeat a large one many times.
const (
	maxDepth = 64
	maxNodes = 100000
)

// decoder walks a node tree into a Go value strictly, collecting errors.
type decoder struct {
	errs   []fieldAt
	lines  map[string]int // field path -> line, to locate Validate's errors
	merged int            // fields brought in by merge keys so far
	depth  int            // nesting of the node being decoded
	nodes  int            // nodes decoded so far
	tooBig bool           // reported that the walk hit maxDepth or maxNodes
	open   map[*yaml.Node]bool
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, fieldAt{&FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}, n.Line})
}

// line returns the line of path or of its nearest enclosing field.
func (d *decoder) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return d.lines[""]
		}
		path = path[:i]
	}
}

var (
	nodeType        = reflect.TypeFor[yaml.Node]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	defaulterType   = reflect.TypeFor[interface{ SetDefaults() }]()
)

// decode stores n into v. A null leaves v as it is (unset means default),
// except that it allocates a nil *struct: "postgres:" alone selects the
// postgres connector, whose missing fields Validate then reports.
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	n = resolve(n)
	if d.open[n] {
		d.fail(n, path, "an alias refers to a node that contains it")
		return
	}
	if d.nodes++; d.nodes > maxNodes || d.depth >= maxDepth {
		if !d.tooBig {
			d.fail(n, path, "nested too deeply or too large (aliases repeating large nodes?)")
			d.tooBig = true
		}
		return
	}
	if d.open == nil {
		d.open = map[*yaml.Node]bool{}
	}
	d.open[n] = true
	d.depth++
	defer func() { d.depth--; delete(d.open, n) }()
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = n.Line
	}
	t := v.Type()
	switch {
	case t == nodeType:
		v.Set(reflect.ValueOf(*n))
	case reflect.PointerTo(t).Implements(unmarshalerType):
		d.scalar(n, path, v)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		p := reflect.New(t.Elem())
		if t.Implements(defaulterType) {
			p.Interface().(interface{ SetDefaults() }).SetDefaults()
		}
		v.Set(p)
		d.mapping(n, path, p.Elem())
	case t.Kind() == reflect.Struct:
		d.mapping(n, path, v)
	case t.Kind() == reflect.Slice:
		d.sequence(n, path, v)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		d.dict(n, path, v)
	default:
		d.scalar(n, path, v)
	}
}

func (d *decoder) scalar(n *yaml.Node, path string, v reflect.Value) {
	if isNull(n) {
		return
	}
	// yaml.v3 truncates 1.5 into an int; we want integers written as such.
	isInt := v.Kind() >= reflect.Int && v.Kind() <= reflect.Uint64 &&
		!reflect.PointerTo(v.Type()).Implements(unmarshalerType)
	if n.Kind != yaml.ScalarNode || isInt && n.ShortTag() != "!!int" {
		d.fail(n, path, "want %s, got %s", typeDesc(v.Type()), nodeDesc(n))
		return
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.fail(n, path, "want %s, got %s", typeDesc(v.Type()), nodeDesc(n))
	}
}

func (d *decoder) sequence(n *yaml.Node, path string, v reflect.Value) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want %s, got %s", typeDesc(v.Type()), nodeDesc(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		d.decode(c, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
	}
	v.Set(s)
}

// mapping decodes n into the struct v by its yaml tags. Keys in skip are
// accepted and ignored (the document's kind).
func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value, skip ...string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping, got %s", nodeDesc(n))
		return
	}
	fields := fieldIndex(v.Type())
	seen := map[string]int{}
	for _, kv := range d.pairs(n, path, map[*yaml.Node]bool{}) {
		key := kv[0]
		p := joinPath(path, key.Value)
		if line, dup := seen[key.Value]; dup {
			d.fail(key, p, "duplicate field (first on line %d)", line)
			continue
		}
		seen[key.Value] = key.Line
		if contains(skip, key.Value) {
			continue
		}
		i, ok := fields[key.Value]
		if !ok {
			d.fail(key, p, "unknown field")
			continue
		}
		d.lines[p] = key.Line
		d.decode(kv[1], p, v.Field(i))
	}
}

// dict decodes the mapping n into the map v (string keys), each value at
// path[key].
func (d *decoder) dict(n *yaml.Node, path string, v reflect.Value) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping, got %s", nodeDesc(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	seen := map[string]int{}
	for _, kv := range d.pairs(n, path, map[*yaml.Node]bool{}) {
		key := kv[0]
		p := joinPath(path, key.Value)
		if line, dup := seen[key.Value]; dup {
			d.fail(key, p, "duplicate field (first on line %d)", line)
			continue
		}
		seen[key.Value] = key.Line
		d.lines[p] = key.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(kv[1], p, elem)
		m.SetMapIndex(reflect.ValueOf(key.Value).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
}

// pairs returns the key/value pairs of mapping n with YAML merge keys
// ("<<: *defaults") expanded: explicit keys first, then merged keys that
// are not already present. Keys that are not scalars are reported.
func (d *decoder) pairs(n *yaml.Node, path string, visiting map[*yaml.Node]bool) [][2]*yaml.Node {
	if d.merged > maxMerged { // reported already
		return nil
	}
	if visiting[n] {
		d.fail(n, path, "merge key refers to itself")
		return nil
	}
	visiting[n] = true
	defer delete(visiting, n)
	var own, merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := resolve(n.Content[i]), n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			d.fail(key, path, "want field names, got %s as a key", nodeDesc(key))
			continue
		}
		if key.ShortTag() != "!!merge" {
			own = append(own, [2]*yaml.Node{key, val})
			continue
		}
		val = resolve(val)
		sources := []*yaml.Node{val}
		if val.Kind == yaml.SequenceNode {
			sources = val.Content
		}
		for _, src := range sources {
			if src = resolve(src); src.Kind != yaml.MappingNode {
				d.fail(src, path, "merge key: want a mapping, got %s", nodeDesc(src))
				continue
			}
			if d.merged > maxMerged { // reported already
				return nil
			}
			if d.merged += len(src.Content) / 2; d.merged > maxMerged {
				d.fail(src, path, "merge keys expand to more than %d fields", maxMerged)
				return nil
			}
			merged = append(merged, d.pairs(src, path, visiting)...)
		}
	}
	present := map[string]bool{}
	for _, kv := range own {
		present[kv[0].Value] = true
	}
	for _, kv := range merged {
		if !present[kv[0].Value] {
			present[kv[0].Value] = true
			own = append(own, kv)
		}
	}
	return own
}

// fieldIndex maps the yaml names of t's fields to their indexes.
func fieldIndex(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

var simpleKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// joinPath appends a field to a path: "postgres" + "dsn" = "postgres.dsn";
// odd keys are quoted: `postgres["a b"]`.
func joinPath(path, key string) string {
	switch {
	case !simpleKey.MatchString(key):
		return fmt.Sprintf("%s[%q]", path, key)
	case path == "":
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// typeDesc describes what a Go type wants, for error messages.
func typeDesc(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[Duration]():
		return "a duration such as 10s"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "a list of strings"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "a boolean"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "an integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	}
	return "a mapping"
}

// nodeDesc describes what a node holds, for error messages. It never
// quotes the value: it could be a secret.
func nodeDesc(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		case "!!str":
			return "a string"
		}
		return "a " + n.ShortTag() + " value"
	}
	return "an alias"
}
