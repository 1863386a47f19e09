package transforms

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// newCast compiles a cast stage: each field converted by the rules of
// convert. A field of the type it is cast to keeps its column.
func newCast(cfg *spec.CastStage, path string) (Stage, error) {
	w := &fieldWriter{}
	var errs []error
	for _, f := range slices.Sorted(maps.Keys(cfg.Fields)) {
		kind, elem, err := spec.ParseType(cfg.Fields[f])
		if err != nil {
			errs = append(errs, &spec.FieldError{Path: path + ".fields." + f, Msg: err.Error()})
			continue
		}
		toNull := cfg.OnError == "set_null"
		w.ops = append(w.ops, fieldOp{
			field: f,
			column: func(old cdc.Column, ok bool) (cdc.Column, error) {
				if ok && old.Kind == kind && old.Elem == elem {
					return old, nil
				}
				return fresh(kind, elem), nil
			},
			value: func(_ context.Context, r *cdc.Record, img cdc.Row, _ any, _ cdc.Column) (any, bool, error) {
				v, ok := img[f]
				if !ok {
					return nil, false, nil
				}
				if s, isText := castText(r, f, v, kind); isText {
					return s, true, nil
				}
				out, err := convert(v, kind, elem)
				if err != nil && toNull {
					return nil, true, nil
				}
				return out, err == nil, err
			},
		})
	}
	return w, errors.Join(errs...)
}

// castText is the text of a date or time of day cast to a string, which
// needs the column's kind to tell them from timestamps and durations.
func castText(r *cdc.Record, field string, v any, to cdc.Kind) (string, bool) {
	if to != cdc.KindString || r.Schema == nil {
		return "", false
	}
	c, ok := r.Schema.Column(field)
	if !ok || (c.Kind != cdc.KindDate && c.Kind != cdc.KindTime) || v == nil {
		return "", false
	}
	return text(v, c.Kind), true
}

// newMapValues compiles a map_values stage: the field's value, as text,
// is looked up in the code table.
func (c *compiler) newMapValues(cfg *spec.MapValuesStage, path string) (Stage, error) {
	table := cfg.Values
	if cfg.File != "" && !c.opts.check {
		var err error
		if table, err = readCodes(c.opts.fs, cfg.File); err != nil {
			return nil, &spec.FieldError{Path: path + ".file", Msg: err.Error()}
		}
	}
	kind, elem := cdc.KindString, cdc.KindUnknown
	if cfg.Type != "" {
		var err error
		if kind, elem, err = spec.ParseType(cfg.Type); err != nil {
			return nil, &spec.FieldError{Path: path + ".type", Msg: err.Error()}
		}
	}
	// Convert the replacements once, so that a bad one fails here.
	mapped := make(map[string]any, len(table))
	for _, from := range slices.Sorted(maps.Keys(table)) {
		to := table[from]
		if to == nil {
			mapped[from] = nil
			continue
		}
		v, err := convert(*to, kind, elem)
		if err != nil {
			return nil, &spec.FieldError{Path: path + ".values." + from, Msg: err.Error()}
		}
		mapped[from] = v
	}
	var def any
	if cfg.Default != nil {
		var err error
		if def, err = convert(*cfg.Default, kind, elem); err != nil {
			return nil, &spec.FieldError{Path: path + ".default", Msg: err.Error()}
		}
	}
	unmapped := cfg.Unmapped
	if cfg.Default != nil {
		unmapped = "default"
	}
	value := func(_ context.Context, _ *cdc.Record, img cdc.Row, _ any, _ cdc.Column) (any, bool, error) {
		v, ok := img[cfg.Field]
		if !ok {
			return nil, false, nil
		}
		if v == nil {
			return nil, true, nil
		}
		key := text(v, cdc.KindUnknown)
		if to, ok := mapped[key]; ok {
			return to, true, nil
		}
		switch unmapped {
		case "default":
			return def, true, nil
		case "set_null":
			return nil, true, nil
		case "keep":
			out, err := convert(v, kind, elem)
			return out, err == nil, err
		}
		return nil, false, fmt.Errorf("no mapping for %s", describe(v))
	}
	return &fieldWriter{ops: []fieldOp{{field: cfg.Field, column: freshColumn(kind, elem), value: value}}}, nil
}

// maxCodesBytes bounds a code table file.
const maxCodesBytes = 16 << 20

// readCodes reads a code table: a CSV file (.csv: from,to per line; an
// empty to is the empty string, and there is no header) or a YAML or JSON
// mapping of from to to (null: NULL).
func readCodes(fsys fs.FS, name string) (map[string]*string, error) {
	var data []byte
	var err error
	if fsys != nil {
		data, err = fs.ReadFile(fsys, strings.TrimPrefix(filepath.ToSlash(name), "./"))
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, err
	}
	if len(data) > maxCodesBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxCodesBytes)
	}
	out := map[string]*string{}
	if strings.EqualFold(filepath.Ext(name), ".csv") {
		r := csv.NewReader(bytes.NewReader(data))
		r.FieldsPerRecord = 2
		for {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if _, dup := out[rec[0]]; dup {
				line, _ := r.FieldPos(0)
				return nil, fmt.Errorf("%s:%d: %q is mapped twice", name, line, rec[0])
			}
			to := rec[1]
			out[rec[0]] = &to
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: want a mapping of values to replacements", name)
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s:%d: want value: replacement", name, k.Line)
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("%s:%d: %q is mapped twice", name, k.Line, k.Value)
		}
		if v.ShortTag() == "!!null" {
			out[k.Value] = nil
			continue
		}
		to := v.Value
		out[k.Value] = &to
	}
	return out, nil
}

// newUUID5 compiles a uuid5 stage: the field gets the version 5 UUID of
// the namespace and the text of the from fields (see uuid5).
func newUUID5(cfg *spec.UUID5Stage) Stage {
	ns := cfg.Namespace
	value := func(_ context.Context, r *cdc.Record, img cdc.Row, _ any, _ cdc.Column) (any, bool, error) {
		parts := make([]any, len(cfg.From))
		for i, f := range cfg.From {
			v, ok := img[f]
			if !ok {
				if _, known := schemaColumn(r, f); known {
					return nil, false, nil // not in this image: cannot compute
				}
				return nil, false, fmt.Errorf("the record has no field %q", f)
			}
			parts[i] = v
		}
		var id string
		var err error
		if len(parts) == 1 {
			id, err = uuid5(ns, parts[0])
		} else {
			id, err = uuid5(ns, parts)
		}
		if err != nil || id == "" {
			return nil, err == nil, err
		}
		return id, true, nil
	}
	return &fieldWriter{ops: []fieldOp{{field: cfg.Field, column: freshColumn(cdc.KindUUID, 0), value: value}}}
}

// schemaColumn returns the named column of r's schema.
func schemaColumn(r *cdc.Record, name string) (cdc.Column, bool) {
	if r.Schema == nil {
		return cdc.Column{}, false
	}
	return r.Schema.Column(name)
}
