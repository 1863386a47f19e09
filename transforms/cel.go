package transforms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// Expressions are CEL (https://cel.dev). docs/stages.md describes the
// environment; in short, these variables are in scope:
//
//	op      string  "r", "c", "u", "d" or "t"
//	table   string  the record's current table, "schema.table"
//	key     map     the key fields
//	before  map     the row before the change ({} when absent)
//	after   map     the row after the change ({} when absent)
//	row     map     the image being computed (see each stage), else after
//	                when present, else before
//	source  map     connector, name, db, schema, table, snapshot, ts_ms,
//	                txId, and the connector's own fields (lsn, ...)
//
// and values convert to CEL as celValue says.

// Bounds on what one expression may cost.
const (
	maxExprBytes = 10000
	maxCost      = 1_000_000
	maxListRange = 10000
)

var rowType = cel.MapType(cel.StringType, cel.DynType)

// newEnv builds the CEL environment of a chain; now is the clock of now().
func newEnv(now func() time.Time) (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("op", cel.StringType),
		cel.Variable("table", cel.StringType),
		cel.Variable("key", rowType),
		cel.Variable("before", rowType),
		cel.Variable("after", rowType),
		cel.Variable("row", rowType),
		cel.Variable("source", rowType),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Encoders(),
		ext.Math(),
		ext.Lists(ext.ListsMaxRangeSize(maxListRange)),
		cel.ParserExpressionSizeLimit(maxExprBytes),
		cel.ParserRecursionLimit(100),
		cel.DefaultUTCTimeZone(true),
		cel.Function("uuid5",
			cel.Overload("uuid5_string_dyn", []*cel.Type{cel.StringType, cel.DynType}, cel.StringType,
				cel.BinaryBinding(func(ns, name ref.Val) ref.Val {
					s, ok := ns.(types.String)
					if !ok {
						return types.MaybeNoSuchOverloadErr(ns)
					}
					parts, err := fromCEL(name)
					if err != nil {
						return types.WrapErr(err)
					}
					id, err := uuid5(string(s), parts)
					if err != nil {
						return types.WrapErr(err)
					}
					if id == "" {
						return types.NullValue
					}
					return types.String(id)
				}))),
		cel.Function("now",
			cel.Overload("now_timestamp", nil, cel.TimestampType,
				cel.FunctionBinding(func(...ref.Val) ref.Val {
					return types.Timestamp{Time: now().UTC()}
				}))),
		cel.Function("lower",
			cel.Overload("lower_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(s ref.Val) ref.Val {
					if x, ok := s.(types.String); ok {
						return types.String(strings.ToLower(string(x)))
					}
					return types.MaybeNoSuchOverloadErr(s)
				}))),
		cel.Function("upper",
			cel.Overload("upper_string", []*cel.Type{cel.StringType}, cel.StringType,
				cel.UnaryBinding(func(s ref.Val) ref.Val {
					if x, ok := s.(types.String); ok {
						return types.String(strings.ToUpper(string(x)))
					}
					return types.MaybeNoSuchOverloadErr(s)
				}))),
	)
}

// program is a compiled expression.
type program struct {
	prg cel.Program
	out *cel.Type // the static type of the result
}

// compileExpr parses and type-checks expr. want, when not nil, is the
// result type the stage needs (dyn is accepted and checked when it runs).
// Errors are *spec.FieldError at path.
func compileExpr(env *cel.Env, path, expr string, want *cel.Type) (*program, error) {
	fail := func(format string, args ...any) error {
		return &spec.FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(expr) == "" {
		return nil, fail("required")
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fail("%s", celMessage(iss.Err()))
	}
	out := ast.OutputType()
	if want != nil && out.Kind() != types.DynKind && !want.IsAssignableType(out) {
		return nil, fail("the expression gives %s, want %s", cel.FormatCELType(out), cel.FormatCELType(want))
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize),
		cel.CostLimit(maxCost))
	if err != nil {
		return nil, fail("%s", celMessage(err))
	}
	return &program{prg: prg, out: out}, nil
}

// celMessage tidies a CEL error: "ERROR: <input>:1:14: Syntax error: ..."
// becomes "1:14: syntax error: ...", the source line and caret kept.
func celMessage(err error) string {
	s := strings.ReplaceAll(err.Error(), "ERROR: <input>:", "")
	return strings.TrimSpace(strings.ReplaceAll(s, "Syntax error:", "syntax error:"))
}

// eval runs p on r with row as the image being computed. A result of
// (nil, true, nil) means the expression read a field that the record's
// table has but this image does not carry (a delete's before image, an
// unchanged TOASTed value): its value cannot be computed here.
func (p *program) eval(_ context.Context, r *cdc.Record, row cdc.Row) (v any, partial bool, err error) {
	act := &activation{r: r, row: row}
	// Eval, not ContextEval: the cost limit bounds every evaluation, and
	// ContextEval costs a cancellable context per call.
	out, _, err := p.prg.Eval(act)
	if err != nil {
		if act.partial() {
			return nil, true, nil
		}
		return nil, false, errors.New(strings.TrimPrefix(err.Error(), "ERROR: "))
	}
	v, err = fromCEL(out)
	return v, false, err
}

// currentImage is the row an expression sees as row outside a stage that
// computes images one by one: after when present, else before.
func currentImage(r *cdc.Record) cdc.Row {
	if r.After != nil {
		return r.After
	}
	return r.Before
}

// activation resolves the variables of one evaluation.
type activation struct {
	r      *cdc.Record
	row    cdc.Row
	missed []string // fields looked up in a row that did not have them
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "op":
		return types.String(a.r.Op.String()), true
	case "table":
		return types.String(a.r.Table.String()), true
	case "key":
		return a.rowVal(a.r.Key), true
	case "before":
		return a.rowVal(a.r.Before), true
	case "after":
		return a.rowVal(a.r.After), true
	case "row":
		return a.rowVal(a.row), true
	case "source":
		return adapter{}.NativeToValue(sourceMap(a.r)), true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) rowVal(r cdc.Row) ref.Val {
	return &rowVal{Mapper: types.NewStringInterfaceMap(adapter{}, r), m: r, act: a}
}

// partial reports whether a failed evaluation had looked up a field that
// the table has but the record did not carry.
func (a *activation) partial() bool {
	if a.r.Schema == nil {
		return false
	}
	for _, f := range a.missed {
		if _, ok := a.r.Schema.Column(f); ok {
			return true
		}
	}
	return false
}

// sourceMap is the envelope's source block of r.
func sourceMap(r *cdc.Record) map[string]any {
	m := map[string]any{
		"connector": r.Source.Connector, "name": r.Source.Name, "db": r.Source.DB,
		"schema": r.Table.Schema, "table": r.Table.Name, "snapshot": r.Source.Snapshot,
		"txId": r.TxID,
	}
	if !r.CommitTime.IsZero() {
		m["ts_ms"] = r.CommitTime.UnixMilli()
	}
	for k, v := range r.Source.Extra {
		if _, taken := m[k]; !taken {
			m[k] = v
		}
	}
	return m
}
