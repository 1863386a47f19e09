// Package spec decodes and validates the specs users write for Sluice
// (DESIGN.md section 5): Source and Pipeline documents in YAML or JSON.
//
// Decoding is strict: an unknown field, a duplicate field or a value of the
// wrong type is an error that names its field path and, where the input
// gives one, its file and line. Validate reports every problem at once,
// joined with errors.Join, each as a *FieldError.
//
// Specs keep secret references (${env:NAME}, ${file:PATH}) unresolved: they
// are stored and returned that way. A worker calls (*Source).Resolved just
// before connecting and must neither store nor log the result (see Redact).
//
// The package also derives every name Sluice creates from an instance name
// and a spec name (replication slots, publications, topics), so that all
// components derive them the same way.
package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Kind is the kind of a spec document, the value of its kind field.
type Kind string

// The kinds of spec.
const (
	KindSource   Kind = "Source"
	KindPipeline Kind = "Pipeline"
)

// Spec is one decoded spec document: a *Source or a *Pipeline.
type Spec interface {
	// Kind returns the spec's kind.
	Kind() Kind
	// Ident returns the spec's name, which identifies it among the specs
	// of its kind.
	Ident() string
	// Validate returns nil or the errors.Join of every problem of the
	// spec, each a *FieldError.
	Validate() error
}

// newSpec returns an empty spec of kind k with its defaults set.
func newSpec(k Kind) (Spec, bool) {
	switch k {
	case KindSource:
		s := new(Source)
		s.SetDefaults()
		return s, true
	case KindPipeline:
		p := new(Pipeline)
		p.SetDefaults()
		return p, true
	}
	return nil, false
}

// FieldError is one problem of a spec. Path locates the field, e.g.
// "postgres.tables[1]"; it is empty for the document as a whole.
type FieldError struct {
	Path string
	Msg  string
}

// Error returns "path: msg", or msg alone when Path is empty.
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// DocumentError locates a problem in the input given to Parse or
// ParseFiles. Err is usually a *FieldError.
type DocumentError struct {
	File  string // the file name given to Parse
	Index int    // 0-based index of the document in the file
	Line  int    // 1-based line of the problem; 0 when unknown
	Kind  Kind   // the document's kind, when known
	Name  string // the document's name, when known
	Err   error
}

// Error returns, for example,
// `doc[0] Source "elmis" (elmis.yaml:7): postgres.bogus: unknown field`.
func (e *DocumentError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "doc[%d]", e.Index)
	if e.Kind != "" {
		b.WriteString(" " + string(e.Kind))
	}
	if e.Name != "" {
		fmt.Fprintf(&b, " %q", e.Name)
	}
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, " (%s:%d)", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, " (%s)", e.File)
	case e.Line > 0:
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String() + ": " + e.Err.Error()
}

// Unwrap returns the located error.
func (e *DocumentError) Unwrap() error { return e.Err }

// FieldErrors returns every *FieldError inside err, walking wrapped and
// joined errors, in order. Callers use it to map problems into API
// responses.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *FieldError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// located is a decoded spec and where it came from.
type located struct {
	spec  Spec
	file  string
	index int
	line  int
}

// Parse decodes and validates every document in data. Documents are YAML,
// separated by "---", or, when filename ends in ".json", a stream of JSON
// objects. Each document needs a kind field (Source or Pipeline); empty
// documents are skipped. Two specs of the same kind may not share a name.
//
// filename is used in error messages only. When any document has a
// problem, Parse returns nil and the errors.Join of every problem, each a
// *DocumentError wrapping a *FieldError (or a syntax error).
func Parse(data []byte, filename string) ([]Spec, error) {
	docs, errs := parse(data, filename)
	errs = append(errs, duplicates(docs)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return specsOf(docs), nil
}

// ParseFiles parses files and directories like Parse. A directory
// contributes its *.yaml, *.yml and *.json files in name order (not
// recursively; names starting with "." are skipped). Names must be unique
// across all the files. Every file is read and every problem reported.
func ParseFiles(paths ...string) ([]Spec, error) {
	var files []string
	var errs []error
	for _, p := range paths {
		found, err := expand(p)
		if err != nil {
			errs = append(errs, err)
		}
		files = append(files, found...)
	}
	var docs []located
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading spec: %w", err))
			continue
		}
		d, e := parse(data, f)
		docs = append(docs, d...)
		errs = append(errs, e...)
	}
	errs = append(errs, duplicates(docs)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return specsOf(docs), nil
}

// expand returns path itself, or the spec files of the directory path.
func expand(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("reading spec directory: %w", err)
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".yaml", ".yml", ".json":
			files = append(files, filepath.Join(path, name))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("spec directory %s: no *.yaml, *.yml or *.json files", path)
	}
	return files, nil
}

// parse decodes and validates every document of one file.
func parse(data []byte, filename string) ([]located, []error) {
	var roots []*yaml.Node
	var err error
	if strings.EqualFold(filepath.Ext(filename), ".json") {
		roots, err = jsonDocuments(data)
	} else {
		roots, err = yamlDocuments(quoteRefs(data))
	}
	var docs []located
	var errs []error
	for i, root := range roots {
		if root == nil { // an empty document
			continue
		}
		s, fes := decodeDocument(root)
		kind, name := Kind(""), ""
		if s != nil {
			kind, name = s.Kind(), s.Ident()
		}
		sort.SliceStable(fes, func(a, b int) bool { return fes[a].line < fes[b].line })
		for _, fe := range fes {
			errs = append(errs, &DocumentError{File: filename, Index: i, Line: fe.line,
				Kind: kind, Name: name, Err: fe.err})
		}
		if len(fes) == 0 {
			docs = append(docs, located{spec: s, file: filename, index: i, line: root.Line})
		}
	}
	if err != nil {
		errs = append(errs, &DocumentError{File: filename, Index: len(roots), Err: err})
	}
	return docs, errs
}

// yamlDocuments returns the root node of every document in data, nil for
// an empty one. On a syntax error it returns the documents before it.
func yamlDocuments(data []byte) (roots []*yaml.Node, err error) {
	// yaml.v3 reports its own errors by panicking and recovering; a panic
	// that escapes it is a parser bug, which user input must not turn into
	// a crash of the server.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: parser failure: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return roots, nil
		}
		if err != nil { // yaml.v3's errors start with "yaml: line N:"
			if bytes.Contains(data, []byte("${")) {
				err = fmt.Errorf(`%w (hint: a ${...} reference inside {...} or [...] must be quoted: "${env:X}")`, err)
			}
			return roots, err
		}
		var root *yaml.Node
		if len(doc.Content) > 0 && !isNull(doc.Content[0]) {
			root = doc.Content[0]
		}
		roots = append(roots, root)
	}
}

// duplicates reports every spec whose kind and name an earlier one has.
func duplicates(docs []located) []error {
	type key struct {
		kind Kind
		name string
	}
	first := map[key]located{}
	var errs []error
	for _, d := range docs {
		k := key{d.spec.Kind(), d.spec.Ident()}
		f, dup := first[k]
		if !dup {
			first[k] = d
			continue
		}
		errs = append(errs, &DocumentError{
			File: d.file, Index: d.index, Line: d.line, Kind: k.kind, Name: k.name,
			Err: &FieldError{Path: "name", Msg: fmt.Sprintf(
				"duplicate %s name (first in doc[%d] of %s)", k.kind, f.index, f.file)},
		})
	}
	return errs
}

func specsOf(docs []located) []Spec {
	out := make([]Spec, len(docs))
	for i, d := range docs {
		out[i] = d.spec
	}
	return out
}
