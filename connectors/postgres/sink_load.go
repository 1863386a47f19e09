package postgres

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// upsertSQL inserts the rows of temporary table tmp (columns cols) into
// d, updating the present columns of those whose key (keyIdx) d holds.
func upsertSQL(d *destTable, cols, keyIdx []int, tmp string) string {
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
	return "INSERT INTO " + d.ident + " AS d (" + identList(d, cols) + ") OVERRIDING SYSTEM VALUE SELECT " +
		identList(d, cols) + " FROM " + tmp + conflict
}

// deleteSQL deletes the rows of d whose key columns (keyIdx) equal those
// of a row of temporary table tmp.
func deleteSQL(d *destTable, keyIdx []int, tmp string) string {
	var where []string
	for _, c := range keyIdx {
		id := d.cols[c].ident
		where = append(where, "d."+id+" = s."+id)
	}
	return "DELETE FROM " + d.ident + " AS d USING " + tmp + " AS s WHERE " + strings.Join(where, " AND ")
}

// insertRows appends rows (columns cols) to d.
func (s *Sink) insertRows(ctx context.Context, tx pgx.Tx, d *destTable, cols []int, rows []*image) error {
	return s.copyRows(ctx, tx, "COPY "+d.ident+" ("+identList(d, cols)+") FROM STDIN", s.copyText(cols, rows))
}

// insertNewRows appends rows (columns cols) to d, except those whose
// unique key (keyIdx) d already holds or that repeat an earlier row's.
func (s *Sink) insertNewRows(ctx context.Context, tx pgx.Tx, d *destTable, cols, keyIdx []int, rows []*image) error {
	tmp, err := s.loadTemp(ctx, tx, "h", d, cols, s.copyText(cols, rows))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO "+d.ident+" ("+identList(d, cols)+") OVERRIDING SYSTEM VALUE SELECT "+
		identList(d, cols)+" FROM "+tmp+" ON CONFLICT ("+identList(d, keyIdx)+") DO NOTHING")
	return err
}

// loadTemp copies data (COPY text of columns cols) into the temporary
// table for (purpose, d, cols), creating it the first time, and returns its
// name.
func (s *Sink) loadTemp(ctx context.Context, tx pgx.Tx, purpose string, d *destTable, cols []int, data []byte) (string, error) {
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
	if err := s.copyRows(ctx, tx, "COPY "+name+" ("+list+") FROM STDIN", data); err != nil {
		return "", err
	}
	return name, nil
}

// copyRows runs the COPY statement sql with data as its input.
func (s *Sink) copyRows(ctx context.Context, tx pgx.Tx, sql string, data []byte) error {
	_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), sql)
	return err
}

// copyText renders rows (columns cols) as COPY text into the sink's
// reusable buffer: valid until the next call.
func (s *Sink) copyText(cols []int, rows []*image) []byte {
	s.copyBuf = appendCopyRows(s.copyBuf[:0], cols, rows)
	return s.copyBuf
}

// appendCopyRows appends rows (columns cols) to b in COPY's text format.
func appendCopyRows(b []byte, cols []int, rows []*image) []byte {
	for _, im := range rows {
		for j, c := range cols {
			if j > 0 {
				b = append(b, '\t')
			}
			if im.state[c] == null {
				b = append(b, `\N`...)
				continue
			}
			b = appendCopyText(b, im.vals[c])
		}
		b = append(b, '\n')
	}
	return b
}

// copySize is about what appendCopyRows appends for rows (columns cols):
// exact for values without characters to escape.
func copySize(cols []int, rows []*image) int {
	n := 0
	for _, im := range rows {
		for _, c := range cols {
			n += len(im.vals[c]) + 1 // a tab or the newline
			if im.state[c] == null {
				n += 2
			}
		}
	}
	return n
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
