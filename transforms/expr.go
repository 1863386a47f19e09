package transforms

import (
	"context"
	"fmt"
	"sync"

	"cel.dev/cel-go/cel"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// newSet compiles a set stage: the field gets the expression's value,
// computed in each image with row bound to it. Its type is cfg.Type when
// given; else the type of the column it replaces when the result is of
// the same family (see sameFamily) or dyn; else the expression's own.
func (c *compiler) newSet(cfg *spec.SetStage, path string) (Stage, error) {
	p, err := compileExpr(c.env, path+".expr", cfg.Expr, nil)
	if err != nil {
		return nil, err
	}
	var kind, elem cdc.Kind
	if cfg.Type != "" {
		if kind, elem, err = spec.ParseType(cfg.Type); err != nil {
			return nil, &spec.FieldError{Path: path + ".type", Msg: err.Error()}
		}
	}
	static, staticElem := staticKind(p.out)
	column := func(old cdc.Column, ok bool) (cdc.Column, error) {
		switch {
		case kind != cdc.KindUnknown && ok && old.Kind == kind && old.Elem == elem:
			return old, nil
		case kind != cdc.KindUnknown:
			return fresh(kind, elem), nil
		case ok && (static == cdc.KindUnknown || sameFamily(static, old.Kind)):
			return old, nil
		case static == cdc.KindUnknown:
			return cdc.Column{}, fmt.Errorf("the expression's type (%s) does not say the field's; give it with \"type\"",
				cel.FormatCELType(p.out))
		}
		return fresh(static, staticElem), nil
	}
	value := func(ctx context.Context, r *cdc.Record, img cdc.Row, _ any, col cdc.Column) (any, bool, error) {
		v, partial, err := p.eval(ctx, r, img)
		if err != nil || partial {
			return nil, false, err
		}
		v, err = typed(v, col)
		return v, err == nil, err
	}
	return &fieldWriter{ops: []fieldOp{{field: cfg.Field, column: column, value: value}}}, nil
}

// sameFamily reports whether a result of kind k goes into a column of kind
// col as that column's type: numbers into numbers, text into text-like
// columns (decimal, enum, uuid, timetz), timestamps into dates and
// timestamps, durations into times and intervals, lists into arrays and
// JSON, maps into JSON.
func sameFamily(k, col cdc.Kind) bool {
	family := func(k cdc.Kind) []string {
		switch k {
		case cdc.KindInt16, cdc.KindInt32, cdc.KindInt64, cdc.KindFloat32, cdc.KindFloat64:
			return []string{"number"}
		case cdc.KindDecimal:
			return []string{"number", "text"}
		case cdc.KindString, cdc.KindEnum, cdc.KindUUID, cdc.KindTimeTZ:
			return []string{"text"}
		case cdc.KindDate, cdc.KindTimestamp, cdc.KindTimestampTZ:
			return []string{"time"}
		case cdc.KindTime, cdc.KindInterval:
			return []string{"duration"}
		case cdc.KindArray:
			return []string{"list"}
		case cdc.KindJSON:
			return []string{"list", "json"}
		}
		return []string{k.String()}
	}
	for _, a := range family(k) {
		for _, b := range family(col) {
			if a == b {
				return true
			}
		}
	}
	return false
}

// filter keeps the records for which its expression is true.
type filter struct {
	p *program
}

func (c *compiler) newFilter(cfg *spec.FilterStage, path string) (Stage, error) {
	p, err := compileExpr(c.env, path+".expr", cfg.Expr, cel.BoolType)
	if err != nil {
		return nil, err
	}
	return &filter{p: p}, nil
}

// Apply keeps r when the expression is true. When it reads a field the
// record does not carry (a delete's before image holds only the key), r is
// kept: a delete of a row that was filtered out deletes nothing.
func (f *filter) Apply(ctx context.Context, r cdc.Record) ([]cdc.Record, error) {
	v, partial, err := f.p.eval(ctx, &r, currentImage(&r))
	switch {
	case err != nil:
		return nil, err
	case partial:
		return []cdc.Record{r}, nil
	}
	keep, ok := v.(bool)
	if !ok {
		return nil, fmt.Errorf("the expression gave %s, want a bool", goKind(v))
	}
	if !keep {
		return nil, nil
	}
	return []cdc.Record{r}, nil
}

// route sets the destination table from an expression.
type route struct {
	p  *program
	mu sync.Mutex
	m  map[routeKey]*cdc.TableSchema
}

type routeKey struct {
	in    *cdc.TableSchema
	table cdc.TableID
}

func (c *compiler) newRoute(cfg *spec.RouteStage, path string) (Stage, error) {
	p, err := compileExpr(c.env, path+".expr", cfg.Expr, cel.StringType)
	if err != nil {
		return nil, err
	}
	return &route{p: p}, nil
}

// Apply sets r's table to the expression's value, "schema.table" or
// "table" (schema public). An empty string or null leaves it as it is, as
// does an expression that reads a field the record does not carry.
func (s *route) Apply(ctx context.Context, r cdc.Record) ([]cdc.Record, error) {
	v, partial, err := s.p.eval(ctx, &r, currentImage(&r))
	if err != nil {
		return nil, err
	}
	if partial || v == nil || v == "" {
		return []cdc.Record{r}, nil
	}
	name, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("the expression gave %s, want a table name", goKind(v))
	}
	t, err := cdc.ParseTableID(name, spec.DefaultSchema)
	if err != nil {
		return nil, err
	}
	r.Table = t
	r.Schema = s.schema(r.Schema, t)
	return []cdc.Record{r}, nil
}

func (s *route) schema(in *cdc.TableSchema, t cdc.TableID) *cdc.TableSchema {
	if in == nil || in.Table == t {
		return in
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := routeKey{in, t}
	if out, ok := s.m[k]; ok {
		return out
	}
	if s.m == nil || len(s.m) >= maxCachedSchemas {
		s.m = map[routeKey]*cdc.TableSchema{}
	}
	out := &cdc.TableSchema{Table: t, Columns: in.Columns, Key: in.Key}
	s.m[k] = out
	return out
}
