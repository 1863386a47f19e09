package transforms

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// fieldOp computes one field of a record, image by image.
type fieldOp struct {
	field string
	// column returns the field's column given the one it replaces (ok:
	// the input schema has one). The name is set by the caller.
	column func(old cdc.Column, ok bool) (cdc.Column, error)
	// value computes the field in img (r.After, r.Before or r.Key) of
	// the input record r; pre is what the writer's prepare returned for
	// img. col is the field's column: of KindUnknown when the record
	// has no schema and the stage does not say a type. present false
	// leaves the field out of the image.
	value func(ctx context.Context, r *cdc.Record, img cdc.Row, pre any, col cdc.Column) (v any, present bool, err error)
}

// fieldWriter is a stage that computes fields: set, cast, map_values,
// uuid5, mask, hash and flatten. Each op sees the input record; the output
// has copies of its rows with the fields set, and a schema derived once
// per input schema.
//
// A field is computed in the after image and in the before image, where
// present. When it is a key field, the key gets the value computed for
// after (else before), or, for a change that carries neither image, the
// value computed from the key.
type fieldWriter struct {
	ops []fieldOp
	// prepare, when set, is called once per image before the ops.
	prepare func(img cdc.Row) (any, error)
	// drop lists fields to remove after the ops.
	drop  []string
	cache schemaCache
}

func (w *fieldWriter) Apply(ctx context.Context, in cdc.Record) ([]cdc.Record, error) {
	out := in
	schema, err := w.cache.get(in.Schema, w.schema)
	if err != nil {
		return nil, err
	}
	out.Schema = schema
	type image struct {
		src, dst cdc.Row
		pre      any
	}
	var images [2]image // after, before; src nil where absent
	for i, src := range [2]cdc.Row{in.After, in.Before} {
		if src == nil {
			continue
		}
		images[i] = image{src: src, dst: maps.Clone(src)}
		if w.prepare != nil {
			if images[i].pre, err = w.prepare(src); err != nil {
				return nil, err
			}
		}
	}
	keys := keyNames(in)
	keyCopied := false
	for _, op := range w.ops {
		col, err := w.opColumn(schema, op)
		if err != nil {
			return nil, err
		}
		var keyVal any
		keySet := false
		for i := range images {
			im := &images[i]
			if im.src == nil {
				continue
			}
			v, present, err := op.value(ctx, &in, im.src, im.pre, col)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op.field, err)
			}
			if present {
				im.dst[op.field] = v
				if !keySet {
					keyVal, keySet = v, true
				}
			} else {
				delete(im.dst, op.field)
			}
		}
		if !slices.Contains(keys, op.field) {
			continue
		}
		if !keySet {
			var pre any
			if w.prepare != nil {
				if pre, err = w.prepare(in.Key); err != nil {
					return nil, err
				}
			}
			v, present, err := op.value(ctx, &in, in.Key, pre, col)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op.field, err)
			}
			if !present {
				return nil, fmt.Errorf("key field %q cannot be computed from the key alone", op.field)
			}
			keyVal = v
		}
		if keyVal == nil {
			return nil, fmt.Errorf("key field %q would be NULL", op.field)
		}
		if !keyCopied {
			out.Key, keyCopied = maps.Clone(in.Key), true
			if out.Key == nil {
				out.Key = cdc.Row{}
			}
		}
		out.Key[op.field] = keyVal
	}
	for _, f := range w.drop {
		if slices.Contains(keys, f) {
			return nil, fmt.Errorf("cannot remove %q: it is part of the key of %s", f, in.Table)
		}
		for i := range images {
			if images[i].dst != nil {
				delete(images[i].dst, f)
			}
		}
	}
	if images[0].src != nil {
		out.After = images[0].dst
	}
	if images[1].src != nil {
		out.Before = images[1].dst
	}
	return []cdc.Record{out}, nil
}

// opColumn returns the column of op's field in the output schema, or what
// the op says without a schema (errors are then ignored: the value is
// converted naturally).
func (w *fieldWriter) opColumn(schema *cdc.TableSchema, op fieldOp) (cdc.Column, error) {
	if schema != nil {
		if c, ok := schema.Column(op.field); ok {
			return c, nil
		}
		return cdc.Column{}, fmt.Errorf("%s: not in the derived schema", op.field)
	}
	c, err := op.column(cdc.Column{}, false)
	if err != nil {
		return cdc.Column{Name: op.field}, nil
	}
	c.Name = op.field
	return c, nil
}

// schema derives the output schema: every op's column replaced or added,
// dropped fields removed.
func (w *fieldWriter) schema(in *cdc.TableSchema) (*cdc.TableSchema, error) {
	out := &cdc.TableSchema{Table: in.Table, Key: in.Key, Columns: slices.Clone(in.Columns)}
	for _, op := range w.ops {
		i := slices.IndexFunc(out.Columns, func(c cdc.Column) bool { return c.Name == op.field })
		var old cdc.Column
		if i >= 0 {
			old = out.Columns[i]
		}
		col, err := op.column(old, i >= 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op.field, err)
		}
		col.Name = op.field
		if i >= 0 {
			out.Columns[i] = col
		} else {
			out.Columns = append(out.Columns, col)
		}
	}
	if len(w.drop) > 0 {
		out.Columns = slices.DeleteFunc(out.Columns, func(c cdc.Column) bool {
			return slices.Contains(w.drop, c.Name) && !slices.Contains(in.Key, c.Name)
		})
	}
	return out, nil
}

// fresh returns a nullable column of a kind, with nothing else from the
// source: a computed value need not fit the source column's type.
func fresh(kind, elem cdc.Kind) cdc.Column {
	return cdc.Column{Kind: kind, Elem: elem, Nullable: true}
}

// freshColumn is a column func for ops whose field always has one kind.
func freshColumn(kind, elem cdc.Kind) func(cdc.Column, bool) (cdc.Column, error) {
	return func(cdc.Column, bool) (cdc.Column, error) { return fresh(kind, elem), nil }
}

// natural converts a value computed without a known column type: maps
// become JSON, unsigned integers int64.
func natural(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		return toJSON(x)
	case uint64:
		return toInt(x, 64)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := natural(e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	return v, nil
}

// typed converts v to col's kind, or naturally when the kind is unknown.
func typed(v any, col cdc.Column) (any, error) {
	if col.Kind == cdc.KindUnknown {
		return natural(v)
	}
	return convert(v, col.Kind, col.Elem)
}
