package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/transforms"
)

// The demo's final check: every destination table must hold exactly what
// the pipelines' stages make of the source's rows. The check reads every
// source row (as text, typed by the column's kind, as the source connector
// types it), runs it through the same compiled stages as a snapshot read,
// and compares the resulting rows with the destination table in SQL, so
// that the destination's own types (uuid, numeric, timestamptz) decide
// what is equal. Computed values (uuid5 ids, mapped codes, flattened
// JSON) are thereby checked exactly, not skipped.

// tableCheck is one source table of a pipeline and the pipeline's stages.
type tableCheck struct {
	pipeline string
	source   cdc.TableID
	schema   *cdc.TableSchema
	chain    *transforms.Chain
}

// demoChecks compiles the stages of every pipeline and reads the schema of
// each of its source tables.
func demoChecks(ctx context.Context, srcDSN string, sources []*spec.Source, pipelines []*spec.Pipeline) ([]tableCheck, error) {
	conn, err := pgx.Connect(ctx, srcDSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	bySource := map[string]*spec.Source{}
	for _, s := range sources {
		bySource[s.Name] = s
	}
	var checks []tableCheck
	for _, p := range pipelines {
		chain, err := transforms.Compile(p.Stages)
		if err != nil {
			return nil, err
		}
		tables, err := p.SourceTables(bySource[p.From.Source])
		if err != nil {
			return nil, err
		}
		for _, t := range tables {
			s, err := tableSchema(ctx, conn, t)
			if err != nil {
				return nil, err
			}
			checks = append(checks, tableCheck{pipeline: p.Name, source: t, schema: s, chain: chain})
		}
	}
	return checks, nil
}

// kindsByType maps the types of the example's source tables to the kinds
// the PostgreSQL source gives their values.
var kindsByType = map[string]cdc.Kind{
	"smallint": cdc.KindInt16, "integer": cdc.KindInt32, "bigint": cdc.KindInt64, "boolean": cdc.KindBool,
	"real": cdc.KindFloat32, "double precision": cdc.KindFloat64, "numeric": cdc.KindDecimal, "text": cdc.KindString,
	"character varying": cdc.KindString, "bytea": cdc.KindBytes, "date": cdc.KindDate, "uuid": cdc.KindUUID,
	"timestamp without time zone": cdc.KindTimestamp, "timestamp with time zone": cdc.KindTimestampTZ,
	"json": cdc.KindJSON, "jsonb": cdc.KindJSON,
}

// tableSchema reads a table's columns, their kinds and its primary key.
func tableSchema(ctx context.Context, conn *pgx.Conn, t cdc.TableID) (*cdc.TableSchema, error) {
	rows, err := conn.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), coalesce(i.indisprimary, false)
		FROM pg_attribute a
		LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey)
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
		pgx.Identifier{t.Schema, t.Name}.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", t, err)
	}
	s := &cdc.TableSchema{Table: t}
	for rows.Next() {
		var name, typ string
		var pk bool
		if err := rows.Scan(&name, &typ, &pk); err != nil {
			return nil, err
		}
		base, _, _ := strings.Cut(typ, "(")
		kind, ok := kindsByType[base]
		if !ok {
			return nil, fmt.Errorf("%s.%s: the demo's check does not know type %s", t, name, typ)
		}
		s.Columns = append(s.Columns, cdc.Column{Name: name, Kind: kind, SourceType: typ, Nullable: true})
		if pk {
			s.Key = append(s.Key, name)
		}
	}
	return s, rows.Err()
}

// destImage is what a destination table must hold: rows by key text.
type destImage struct {
	table cdc.TableID
	cols  []string // in the order the stages produced them
	key   []string
	rows  map[string]cdc.Row
}

// expected runs every source row through the stages and collects the rows
// each destination table must hold.
func expected(ctx context.Context, src *pgx.Conn, checks []tableCheck) ([]*destImage, error) {
	byTable := map[cdc.TableID]*destImage{}
	var order []*destImage
	for _, c := range checks {
		rows, err := sourceRows(ctx, src, c.schema)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			r := cdc.Record{Table: c.source, Op: cdc.OpRead, Key: cdc.Row{}, After: row, Schema: c.schema}
			for _, k := range c.schema.Key {
				r.Key[k] = row[k]
			}
			out, err := c.chain.Apply(ctx, r)
			if err != nil {
				return nil, fmt.Errorf("pipeline %s, %s row %v: %w", c.pipeline, c.source, r.Key, err)
			}
			for _, o := range out {
				d := byTable[o.Table]
				if d == nil {
					d = &destImage{table: o.Table, key: o.Schema.Key, rows: map[string]cdc.Row{}}
					byTable[o.Table] = d
					order = append(order, d)
				}
				for _, col := range o.Schema.Columns {
					if _, ok := o.After[col.Name]; ok && !slices.Contains(d.cols, col.Name) {
						d.cols = append(d.cols, col.Name)
					}
				}
				d.rows[keyText(o.Key, d.key)] = o.After // the last image of a key wins, as in the sink
			}
		}
	}
	return order, nil
}

// sourceRows reads every row of a table, typed by the schema's kinds.
func sourceRows(ctx context.Context, conn *pgx.Conn, s *cdc.TableSchema) ([]cdc.Row, error) {
	cols := make([]string, len(s.Columns))
	for i, c := range s.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize() + "::text"
	}
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s", strings.Join(cols, ", "),
		pgx.Identifier{s.Table.Schema, s.Table.Name}.Sanitize()))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.Table, err)
	}
	var out []cdc.Row
	texts := make([]*string, len(s.Columns))
	dest := make([]any, len(s.Columns))
	for i := range dest {
		dest[i] = &texts[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row := cdc.Row{}
		for i, c := range s.Columns {
			if texts[i] == nil {
				row[c.Name] = nil
				continue
			}
			v, err := transforms.Convert(*texts[i], c.Kind, c.Elem)
			if c.Kind == cdc.KindBytes {
				v, err = hex.DecodeString(strings.TrimPrefix(*texts[i], `\x`))
			}
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", s.Table, c.Name, err)
			}
			row[c.Name] = v
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// pgText writes a value as PostgreSQL text input; nil is NULL.
func pgText(v any) (*string, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		s = `\x` + hex.EncodeToString(x)
	default:
		t, err := transforms.Convert(v, cdc.KindString, 0)
		if err != nil {
			return nil, err
		}
		s = t.(string)
	}
	return &s, nil
}

func keyText(key cdc.Row, names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		if t, err := pgText(key[n]); err == nil && t != nil {
			parts[i] = *t
		}
	}
	return strings.Join(parts, "\x00")
}

// tableResult is the comparison of one destination table.
type tableResult struct {
	want, have, missing, extra int64
}

// compareTable loads the expected rows into a temporary table of the
// destination's column types and counts the differences both ways.
func compareTable(ctx context.Context, dst *pgx.Conn, d *destImage) (res tableResult, err error) {
	tx, err := dst.Begin(ctx)
	if err != nil {
		return res, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	table := pgx.Identifier{d.table.Schema, d.table.Name}.Sanitize()
	colList := columnList(d.cols)
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE _expected ON COMMIT DROP AS SELECT %s FROM %s WHERE false", colList, table)); err != nil {
		return res, fmt.Errorf("%s: %w", d.table, err)
	}
	if err := insertRows(ctx, tx, "_expected", d); err != nil {
		return res, err
	}
	err = tx.QueryRow(ctx, fmt.Sprintf(`SELECT (SELECT count(*) FROM _expected), (SELECT count(*) FROM %[1]s),
		(SELECT count(*) FROM (SELECT %[2]s FROM _expected EXCEPT ALL SELECT %[2]s FROM %[1]s) m),
		(SELECT count(*) FROM (SELECT %[2]s FROM %[1]s EXCEPT ALL SELECT %[2]s FROM _expected) e)`, table, colList)).
		Scan(&res.want, &res.have, &res.missing, &res.extra)
	if err != nil {
		return res, fmt.Errorf("%s: compare: %w", d.table, err)
	}
	return res, nil
}

func columnList(cols []string) string {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(quoted, ", ")
}

// insertRows inserts d's rows into the table into (quoted), each value
// sent as text and cast to the type of the destination table's column.
func insertRows(ctx context.Context, tx pgx.Tx, into string, d *destImage) error {
	keys := slices.Sorted(maps.Keys(d.rows)) // one order for every column
	arrays := make([]any, len(d.cols))
	params := make([]string, len(d.cols))
	for i, c := range d.cols {
		vals := make([]*string, 0, len(d.rows))
		for _, k := range keys {
			t, err := pgText(d.rows[k][c])
			if err != nil {
				return fmt.Errorf("%s.%s: %w", d.table, c, err)
			}
			vals = append(vals, t)
		}
		arrays[i] = vals
		params[i] = fmt.Sprintf("$%d::text[]", i+1)
	}
	colList := columnList(d.cols)
	casts, err := castColumns(ctx, tx, d)
	if err != nil {
		return err
	}
	insert := fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM unnest(%s) AS u(%s)`, into, colList,
		casts, strings.Join(params, ", "), colList)
	if _, err := tx.Exec(ctx, insert, arrays...); err != nil {
		return fmt.Errorf("%s: load the expected rows: %w", d.table, err)
	}
	return nil
}

// castColumns casts the unnested text columns to the destination's types.
func castColumns(ctx context.Context, tx pgx.Tx, d *destImage) (string, error) {
	out := make([]string, len(d.cols))
	for i, c := range d.cols {
		var typ string
		err := tx.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped`,
			pgx.Identifier{d.table.Schema, d.table.Name}.Sanitize(), c).Scan(&typ)
		if err != nil {
			return "", fmt.Errorf("%s.%s: the destination has no such column: %w", d.table, c, err)
		}
		out[i] = fmt.Sprintf("u.%s::%s", pgx.Identifier{c}.Sanitize(), typ)
	}
	return strings.Join(out, ", "), nil
}

// waitConverged compares every destination table with what the stages
// make of the source until they all match or the timeout passes, and
// reports the last comparison.
func waitConverged(ctx context.Context, srcDSN, dstDSN string, checks []tableCheck, timeout time.Duration) (bool, string) {
	src, err := pgx.Connect(ctx, srcDSN)
	if err != nil {
		return false, fmt.Sprintf("cannot connect to the source: %v\n", err)
	}
	defer src.Close(context.WithoutCancel(ctx))
	dst, err := pgx.Connect(ctx, dstDSN)
	if err != nil {
		return false, fmt.Sprintf("cannot connect to the destination: %v\n", err)
	}
	defer dst.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(timeout)
	for {
		ok, report, err := compareAll(ctx, src, dst, checks)
		if err != nil {
			return false, err.Error() + "\n"
		}
		if ok || time.Now().After(deadline) || ctx.Err() != nil {
			return ok, report
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// compareAll compares every destination table once.
func compareAll(ctx context.Context, src, dst *pgx.Conn, checks []tableCheck) (bool, string, error) {
	images, err := expected(ctx, src, checks)
	if err != nil {
		return false, "", err
	}
	var b strings.Builder
	ok := true
	fmt.Fprintf(&b, "%-40s %9s %9s %8s %8s  %s\n", "destination table", "expected", "rows", "missing", "extra", "result")
	for _, d := range images {
		res, err := compareTable(ctx, dst, d)
		if err != nil {
			return false, "", errors.Join(fmt.Errorf("compare %s", d.table), err)
		}
		verdict := "match"
		if res.missing != 0 || res.extra != 0 || res.want != res.have {
			verdict, ok = "DIFFERS", false
		}
		fmt.Fprintf(&b, "%-40s %9d %9d %8d %8d  %s\n", d.table, res.want, res.have, res.missing, res.extra, verdict)
	}
	fmt.Fprintf(&b, "(expected: every source row through the pipelines' stages; compared column by column in the destination's types)\n")
	return ok, b.String(), nil
}
