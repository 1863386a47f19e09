package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// destCol is one column of a destination table.
type destCol struct {
	name      string
	ident     string // quoted
	typ       string // format_type, with modifiers
	generated bool
}

// destTable is what the sink knows of a destination table from the
// catalog, loaded once and again after DDL.
type destTable struct {
	id    cdc.TableID
	ident string // quoted schema.name
	cols  []destCol
	index map[string]int
	// uniques are the column sets of the primary key (first, if any) and
	// of the unique indexes that ON CONFLICT can use; pkFirst tells
	// whether uniques[0] is the primary key.
	uniques [][]string
	pkFirst bool
	// checked holds the record schemas whose columns all exist.
	checked map[*cdc.TableSchema]bool
}

// History mode's metadata columns and their types.
var historyCols = []struct{ name, typ string }{
	{"__op", "character(1)"},
	{"__position", "text"},
	{"__tx_id", "text"},
	{"__commit_time", "timestamp with time zone"},
	{"__seq", "bigint"},
}

// loadDest reads table t from the catalog; nil when it does not exist.
func loadDest(ctx context.Context, q querier, t cdc.TableID) (*destTable, error) {
	rows, err := q.Query(ctx, `SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attgenerated <> ''
	FROM pg_catalog.pg_class c
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'f')
	ORDER BY a.attnum`, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("load columns: %w", err)
	}
	d := &destTable{id: t, ident: quoteTable(t), index: map[string]int{}, checked: map[*cdc.TableSchema]bool{}}
	var c destCol
	_, err = pgx.ForEachRow(rows, []any{&c.name, &c.typ, &c.generated}, func() error {
		c.ident = pgx.Identifier{c.name}.Sanitize()
		d.index[c.name] = len(d.cols)
		d.cols = append(d.cols, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load columns: %w", err)
	}
	if len(d.cols) == 0 {
		exists, err := tableExists(ctx, q, t)
		if err != nil || !exists {
			return nil, err
		}
	}
	// Unique indexes usable as ON CONFLICT arbiters: valid, immediate, no
	// predicate, no expressions; key columns only (not INCLUDE ones).
	rows, err = q.Query(ctx, `SELECT i.indisprimary, (SELECT array_agg(a.attname::text ORDER BY k.ord)
		FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE k.ord <= i.indnkeyatts)
	FROM pg_catalog.pg_index i
	JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indisvalid AND i.indimmediate
		AND i.indpred IS NULL AND i.indexprs IS NULL
	ORDER BY i.indisprimary DESC, i.indexrelid`, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("load unique keys: %w", err)
	}
	var cols []string
	var primary bool
	_, err = pgx.ForEachRow(rows, []any{&primary, &cols}, func() error {
		if primary && len(d.uniques) == 0 {
			d.pkFirst = true
		}
		d.uniques = append(d.uniques, slices.Clone(cols))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load unique keys: %w", err)
	}
	return d, nil
}

// conflictKey returns the unique key of d whose columns are keyCols (in
// any order).
func (d *destTable) conflictKey(keyCols []string) ([]string, bool) {
	want := slices.Sorted(slices.Values(keyCols))
	for _, u := range d.uniques {
		if slices.Equal(slices.Sorted(slices.Values(u)), want) {
			return u, true
		}
	}
	return nil, false
}

// destFor returns table t's catalog data, creating the table or adding
// columns that the records' schemas (and history mode) need, as
// CreateTables allows. keyCols is the record key, for a created table's
// primary key in upsert mode.
func (s *Sink) destFor(ctx context.Context, tx pgx.Tx, t cdc.TableID, recs []*cdc.Record, keyCols []string) (*destTable, error) {
	d := s.dest(t)
	if d == nil {
		var err error
		if d, err = loadDest(ctx, tx, t); err != nil {
			return nil, err
		}
		if d == nil {
			if !s.cfg.CreateTables {
				return nil, cdc.Permanent(fmt.Errorf("destination table %s does not exist (create it, or set sink.create_tables: true)", t))
			}
			if d, err = s.createTable(ctx, tx, t, recs, keyCols); err != nil {
				return nil, err
			}
		}
		s.setDest(t, d)
	}
	var missing []cdc.Column
	seen := map[string]bool{}
	for i := range recs {
		sc := recs[i].Schema
		if sc == nil || d.checked[sc] {
			continue
		}
		for _, c := range sc.Columns {
			if _, ok := d.index[c.Name]; !ok && !seen[c.Name] {
				seen[c.Name] = true
				missing = append(missing, c)
			}
		}
	}
	var extra []string // history metadata columns
	if s.cfg.Mode == ModeHistory {
		for _, h := range historyCols {
			if _, ok := d.index[h.name]; !ok {
				extra = append(extra, h.name)
			}
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		if err := s.addColumns(ctx, tx, d, missing, extra); err != nil {
			return nil, err
		}
		var err error
		if d, err = loadDest(ctx, tx, t); err != nil {
			return nil, err
		}
		if d == nil {
			return nil, fmt.Errorf("table %s vanished after ALTER TABLE", t)
		}
		s.setDest(t, d)
	}
	if len(d.checked) > 1000 {
		clear(d.checked)
	}
	for i := range recs {
		if sc := recs[i].Schema; sc != nil {
			d.checked[sc] = true
		}
	}
	return d, nil
}

// addColumns adds columns to an existing table, or explains why not.
func (s *Sink) addColumns(ctx context.Context, tx pgx.Tx, d *destTable, missing []cdc.Column, extra []string) error {
	if !s.cfg.CreateTables {
		names := make([]string, 0, len(missing)+len(extra))
		for _, c := range missing {
			names = append(names, c.Name)
		}
		names = append(names, extra...)
		return cdc.Permanent(fmt.Errorf("destination table %s has no column %s (add it, or set sink.create_tables: true)",
			d.id, strings.Join(quoteAll(names), ", ")))
	}
	types, err := s.columnTypes(ctx, tx, missing)
	if err != nil {
		return err
	}
	var adds []string
	for i, c := range missing {
		adds = append(adds, "ADD COLUMN IF NOT EXISTS "+pgx.Identifier{c.Name}.Sanitize()+" "+types[i])
	}
	for _, name := range extra {
		for _, h := range historyCols {
			if h.name == name {
				adds = append(adds, "ADD COLUMN IF NOT EXISTS "+pgx.Identifier{h.name}.Sanitize()+" "+h.typ)
			}
		}
	}
	if _, err := tx.Exec(ctx, "ALTER TABLE "+d.ident+" "+strings.Join(adds, ", ")); err != nil {
		return fmt.Errorf("add columns: %w", err)
	}
	s.log.Info("postgres sink: added columns", "table", d.id.String(), "columns", len(adds))
	return nil
}

// createTable creates t from the records' schemas: the columns of the
// latest schema, then any other column of earlier ones. Upsert mode
// makes the key the primary key; insert and history tables have none,
// since keys repeat there, but a history table is unique on key, __op and
// __position (one row per change).
func (s *Sink) createTable(ctx context.Context, tx pgx.Tx, t cdc.TableID, recs []*cdc.Record, keyCols []string) (*destTable, error) {
	var cols []cdc.Column
	seen := map[string]bool{}
	for i := len(recs) - 1; i >= 0; i-- {
		if sc := recs[i].Schema; sc != nil {
			for _, c := range sc.Columns {
				if !seen[c.Name] {
					seen[c.Name] = true
					cols = append(cols, c)
				}
			}
		}
	}
	if len(cols) == 0 {
		return nil, cdc.Permanent(fmt.Errorf("destination table %s does not exist and the records carry no schema to create it from", t))
	}
	if s.cfg.Mode == ModeUpsert {
		if len(keyCols) == 0 {
			return nil, cdc.Permanent(fmt.Errorf("cannot create destination table %s for upserts: the records carry no key", t))
		}
		for _, k := range keyCols {
			if !seen[k] {
				return nil, cdc.Permanent(fmt.Errorf("cannot create destination table %s: key column %q is not in the record schema", t, k))
			}
		}
	}
	types, err := s.columnTypes(ctx, tx, cols)
	if err != nil {
		return nil, err
	}
	var defs []string
	for i, c := range cols {
		defs = append(defs, pgx.Identifier{c.Name}.Sanitize()+" "+types[i])
	}
	if s.cfg.Mode == ModeHistory {
		for _, h := range historyCols {
			if !seen[h.name] {
				defs = append(defs, pgx.Identifier{h.name}.Sanitize()+" "+h.typ)
			}
		}
	}
	switch {
	case s.cfg.Mode == ModeUpsert:
		defs = append(defs, "PRIMARY KEY ("+strings.Join(quoteAll(keyCols), ", ")+")")
	case s.cfg.Mode == ModeHistory && len(keyCols) > 0 && keyInColumns(keyCols, seen):
		// One row per change: a change repeated on Kafka is skipped.
		defs = append(defs, "UNIQUE ("+strings.Join(quoteAll(append(slices.Clone(keyCols), historyCols[0].name, historyCols[1].name)), ", ")+")")
	}
	if err := ensureSchema(ctx, tx, t.Schema); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+quoteTable(t)+" (\n\t"+strings.Join(defs, ",\n\t")+"\n)"); err != nil {
		return nil, fmt.Errorf("create table: %w", err)
	}
	s.log.Info("postgres sink: created destination table", "table", t.String(), "mode", s.cfg.Mode, "columns", len(cols))
	d, err := loadDest(ctx, tx, t)
	if err == nil && d == nil {
		err = errors.New("table not found after CREATE TABLE")
	}
	return d, err
}

// keyInColumns reports whether every key column is among the columns.
func keyInColumns(keyCols []string, cols map[string]bool) bool {
	for _, k := range keyCols {
		if !cols[k] {
			return false
		}
	}
	return true
}

// typeNameRE admits what format_type prints for built-in and extension
// types; anything else is not even asked about.
var typeNameRE = regexp.MustCompile(`^[A-Za-z_"][A-Za-z0-9_ ,()"\[\].-]*$`)

// columnTypes chooses the destination type of each column: its
// SourceType when the destination knows that type as a built-in or a base
// type (an extension's, like citext), else a type from its Kind (enums,
// domains and other user types of the source are unlikely to exist in the
// destination; where they do, they may differ).
func (s *Sink) columnTypes(ctx context.Context, tx pgx.Tx, cols []cdc.Column) ([]string, error) {
	var ask []string
	for _, c := range cols {
		if c.SourceType != "" && len(c.SourceType) < 200 && typeNameRE.MatchString(c.SourceType) && !slices.Contains(ask, c.SourceType) {
			ask = append(ask, c.SourceType)
		}
	}
	known := map[string]bool{}
	if len(ask) > 0 {
		if err := resolveTypes(ctx, tx, ask, known); err != nil {
			// A name the parser rejects fails the whole query: ask one by one.
			for _, a := range ask {
				if err := resolveTypes(ctx, tx, []string{a}, known); err != nil {
					s.log.Debug("postgres sink: source type unknown to the destination", "type", a, "err", err)
				}
			}
		}
	}
	out := make([]string, len(cols))
	for i, c := range cols {
		if known[c.SourceType] {
			out[i] = c.SourceType
			continue
		}
		t, err := kindType(c, c.Kind)
		if err != nil {
			return nil, cdc.Permanent(fmt.Errorf("column %q: %w", c.Name, err))
		}
		if c.Kind == cdc.KindArray {
			out[i] = t + "[]"
		} else {
			out[i] = t
		}
	}
	return out, nil
}

// resolveTypes adds to known the names that denote usable types, in a
// savepoint since a malformed name raises an error.
func resolveTypes(ctx context.Context, tx pgx.Tx, names []string, known map[string]bool) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	rows, err := sp.Query(ctx, `SELECT u.x FROM unnest($1::text[]) AS u(x)
	JOIN pg_catalog.pg_type t ON t.oid = to_regtype(u.x)
	LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
	WHERE t.oid < 16384 OR COALESCE(e.typtype, t.typtype) = 'b'`, names)
	if err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	var name string
	found := map[string]bool{}
	if _, err := pgx.ForEachRow(rows, []any{&name}, func() error { found[name] = true; return nil }); err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	if err := sp.Commit(ctx); err != nil {
		return err
	}
	for n := range found {
		known[n] = true
	}
	return nil
}

// kindType is the destination type for a column of kind k that has no
// usable SourceType (for arrays: the element type).
func kindType(c cdc.Column, k cdc.Kind) (string, error) {
	switch k {
	case cdc.KindBool:
		return "boolean", nil
	case cdc.KindInt16:
		return "smallint", nil
	case cdc.KindInt32:
		return "integer", nil
	case cdc.KindInt64:
		return "bigint", nil
	case cdc.KindFloat32:
		return "real", nil
	case cdc.KindFloat64:
		return "double precision", nil
	case cdc.KindDecimal:
		if c.Precision > 0 {
			return fmt.Sprintf("numeric(%d,%d)", c.Precision, c.Scale), nil
		}
		return "numeric", nil
	case cdc.KindString, cdc.KindEnum, cdc.KindUnknown:
		if c.Length > 0 {
			return fmt.Sprintf("character varying(%d)", c.Length), nil
		}
		return "text", nil
	case cdc.KindBytes:
		return "bytea", nil
	case cdc.KindDate:
		return "date", nil
	case cdc.KindTime:
		return "time without time zone", nil
	case cdc.KindTimeTZ:
		return "time with time zone", nil
	case cdc.KindTimestamp:
		return "timestamp without time zone", nil
	case cdc.KindTimestampTZ:
		return "timestamp with time zone", nil
	case cdc.KindInterval:
		return "interval", nil
	case cdc.KindUUID:
		return "uuid", nil
	case cdc.KindJSON:
		return "jsonb", nil
	case cdc.KindArray:
		if c.Elem == cdc.KindArray {
			return "", errors.New("array of kind array")
		}
		return kindType(c, c.Elem)
	}
	return "", fmt.Errorf("no destination type for kind %s", k)
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}

// sortedKeys returns a row's column names, sorted.
func sortedKeys(r cdc.Row) []string {
	ks := make([]string, 0, len(r))
	for k := range r {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
