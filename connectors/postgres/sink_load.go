package postgres

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// upsertRows inserts rows (columns cols) into d, updating the present
// non-key columns of rows whose key (keyIdx) exists.
func (s *Sink) upsertRows(ctx context.Context, tx pgx.Tx, d *destTable, cols, keyIdx []int, rows []*image) error {
	var set []string
	for _, c := range cols {
		if !containsInt(keyIdx, c) {
			id := d.cols[c].ident
			set = append(set, id+" = EXCLUDED."+id)
		}
	}
	conflict := " ON CONFLICT (" + identList(d, keyIdx) + ") DO NOTHING"
	if len(set) > 0 {
		conflict = " ON CONFLICT (" + identList(d, keyIdx) + ") DO UPDATE SET " + strings.Join(set, ", ")
	}
	insert := "INSERT INTO " + d.ident + " AS d (" + identList(d, cols) + ") OVERRIDING SYSTEM VALUE "
	tmp, err := s.loadTemp(ctx, tx, "u", d, cols, rows)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, insert+"SELECT "+identList(d, cols)+" FROM "+tmp+conflict)
	return err
}

// deleteRows deletes the rows whose key columns (keyIdx) equal those of
// rows.
func (s *Sink) deleteRows(ctx context.Context, tx pgx.Tx, d *destTable, keyIdx []int, rows []*image) error {
	var where []string
	tmp, err := s.loadTemp(ctx, tx, "d", d, keyIdx, rows)
	if err != nil {
		return err
	}
	for _, c := range keyIdx {
		id := d.cols[c].ident
		where = append(where, "d."+id+" = s."+id)
	}
	_, err = tx.Exec(ctx, "DELETE FROM "+d.ident+" AS d USING "+tmp+" AS s WHERE "+strings.Join(where, " AND "))
	return err
}

// insertRows appends rows (columns cols) to d.
func (s *Sink) insertRows(ctx context.Context, tx pgx.Tx, d *destTable, cols []int, rows []*image) error {
	return s.copyRows(ctx, tx, "COPY "+d.ident+" ("+identList(d, cols)+") FROM STDIN", cols, rows)
}

// insertNewRows appends rows (columns cols) to d, except those whose
// unique key (keyIdx) d already holds or that repeat an earlier row's.
func (s *Sink) insertNewRows(ctx context.Context, tx pgx.Tx, d *destTable, cols, keyIdx []int, rows []*image) error {
	tmp, err := s.loadTemp(ctx, tx, "h", d, cols, rows)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO "+d.ident+" ("+identList(d, cols)+") OVERRIDING SYSTEM VALUE SELECT "+
		identList(d, cols)+" FROM "+tmp+" ON CONFLICT ("+identList(d, keyIdx)+") DO NOTHING")
	return err
}

// loadTemp copies rows into the temporary table for (purpose, d, cols),
// creating it the first time, and returns its name.
func (s *Sink) loadTemp(ctx context.Context, tx pgx.Tx, purpose string, d *destTable, cols []int, rows []*image) (string, error) {
	list := identList(d, cols)
	k := purpose + " " + d.ident + " " + list
	name, ok := s.temps[k]
	if !ok {
		name, ok = s.pendingTemps[k]
	}
	if !ok {
		s.tempSeq++
		bare := "sluice_" + purpose + strconv.Itoa(s.tempSeq)
		// CREATE TABLE AS keeps the columns' types, typmods and
		// collations, and none of their constraints.
		if _, err := tx.Exec(ctx, "CREATE TEMP TABLE "+bare+" ON COMMIT DELETE ROWS AS SELECT "+
			list+" FROM "+d.ident+" WITH NO DATA"); err != nil {
			return "", fmt.Errorf("create temporary table: %w", err)
		}
		name = "pg_temp." + bare
		s.pendingTemps[k] = name
	}
	if err := s.copyRows(ctx, tx, "COPY "+name+" ("+list+") FROM STDIN", cols, rows); err != nil {
		return "", err
	}
	return name, nil
}

// copyRows runs a COPY FROM STDIN in text format with the rows' cols.
func (s *Sink) copyRows(ctx context.Context, tx pgx.Tx, sql string, cols []int, rows []*image) error {
	buf := s.copyBuf[:0]
	for _, im := range rows {
		for j, c := range cols {
			if j > 0 {
				buf = append(buf, '\t')
			}
			if im.state[c] == null {
				buf = append(buf, `\N`...)
				continue
			}
			buf = appendCopyText(buf, im.vals[c])
		}
		buf = append(buf, '\n')
	}
	s.copyBuf = buf
	_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(buf), sql)
	return err
}

// appendCopyText escapes v for COPY's text format.
func appendCopyText(b []byte, v string) []byte {
	start := 0
	for i := 0; i < len(v); i++ {
		var esc byte
		switch v[i] {
		case '\\':
			esc = '\\'
		case '\t':
			esc = 't'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		default:
			continue
		}
		b = append(b, v[start:i]...)
		b = append(b, '\\', esc)
		start = i + 1
	}
	return append(b, v[start:]...)
}

// identList is the quoted names of columns cols of d, comma-separated.
func identList(d *destTable, cols []int) string {
	ids := make([]string, len(cols))
	for i, c := range cols {
		ids[i] = d.cols[c].ident
	}
	return strings.Join(ids, ", ")
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
