package transforms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// newFlatten compiles a flatten stage: columns get values out of a JSON
// field, by path. A column's type is given in Types (default string: a
// JSON string is its text, any other value its JSON text); a path that is
// not in the document, or leads to JSON null, gives NULL.
func newFlatten(cfg *spec.FlattenStage, path string) (Stage, error) {
	w := &fieldWriter{prepare: func(img cdc.Row) (any, error) {
		v, ok := img[cfg.Field]
		if !ok {
			return absentDoc{}, nil
		}
		return parseDoc(v)
	}}
	if !cfg.Keep {
		w.drop = []string{cfg.Field}
	}
	var errs []error
	for _, col := range slices.Sorted(maps.Keys(cfg.Columns)) {
		kind, elem := cdc.KindString, cdc.KindUnknown
		if t, ok := cfg.Types[col]; ok {
			var err error
			if kind, elem, err = spec.ParseType(t); err != nil {
				errs = append(errs, &spec.FieldError{Path: path + ".types." + col, Msg: err.Error()})
				continue
			}
		}
		steps := strings.Split(cfg.Columns[col], ".")
		w.ops = append(w.ops, fieldOp{
			field:  col,
			column: freshColumn(kind, elem),
			value: func(_ context.Context, _ *cdc.Record, _ cdc.Row, doc any, _ cdc.Column) (any, bool, error) {
				if _, absent := doc.(absentDoc); absent {
					return nil, false, nil
				}
				v := lookup(doc, steps)
				if v == nil {
					return nil, true, nil
				}
				if kind == cdc.KindString {
					if s, ok := v.(string); ok {
						return s, true, nil
					}
					v = cdc.JSON(text(v, cdc.KindUnknown))
				}
				out, err := convert(v, kind, elem)
				return out, err == nil, err
			},
		})
	}
	return w, errors.Join(errs...)
}

// absentDoc stands for a JSON field the image does not carry.
type absentDoc struct{}

// parseDoc parses a JSON field's value: a JSON document, or a string or
// bytes holding one; numbers stay json.Number. NULL is nil.
func parseDoc(v any) (any, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return nil, nil
	case cdc.JSON:
		s = string(x)
	case string:
		s = x
	case []byte:
		s = string(x)
	case map[string]any, []any:
		return x, nil
	default:
		return nil, fmt.Errorf("flatten: the field holds %s, want JSON", goKind(v))
	}
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var doc any
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("flatten: not a JSON document: %w", err)
	}
	return doc, nil
}

// lookup follows steps (keys, or indexes into lists) into doc; nil when
// the path is not there.
func lookup(doc any, steps []string) any {
	for _, s := range steps {
		switch x := doc.(type) {
		case map[string]any:
			doc = x[s]
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			doc = x[i]
		default:
			return nil
		}
	}
	return doc
}
