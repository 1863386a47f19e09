package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// snapshot is the state of an initial snapshot. It reads every table inside
// one REPEATABLE READ transaction that imports the snapshot exported when the
// slot was created, so it sees exactly the data as of the slot's consistent
// point: the stream then starts right after it, with nothing lost or doubled.
// Tables are read in primary-key order, ChunkRows at a time (keyset
// pagination), so memory stays bounded whatever the table size and the
// source only sees ordinary index scans.
type snapshot struct {
	name     string        // exported snapshot
	startLSN pglogrepl.LSN // slot's consistent point
	began    bool
	at       time.Time
	// tables are the tables to read: every captured table, or those of a
	// resnapshot request.
	tables []cdc.TableID
	// completes is the resnapshot request this snapshot carries out
	// (zero: none); its end makes checkpoints record it.
	completes resnapID

	idx     int              // current table in tables
	schema  *cdc.TableSchema // current table, nil until loaded
	keyIdx  []int            // positions of the key columns in schema.Columns
	lastKey [][]byte         // key text of the last row read, nil at a table's start
	rows    int64
	// estimates are the planner's row counts of tables, for
	// Config.SnapshotProgress.
	estimates []int64
}

// beginSnapshot creates the slot with an exported snapshot and opens the
// transaction that reads tables in it. The transaction and its locks are
// held until the reads end, including, for a resnapshot, while the old
// slot is streamed up to the consistent point first: the exported
// snapshot can only be imported before the slot's connection runs
// anything else, and a table rewritten after the consistent point but
// before the lock would read as empty.
func (s *Source) beginSnapshot(ctx context.Context, tables []cdc.TableID) error {
	if _, err := s.createSlot(ctx, s.slot, "EXPORT_SNAPSHOT"); err != nil {
		return err
	}
	s.snap.tables = tables
	s.estimateSnapshot(ctx)
	if _, err := s.conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return fmt.Errorf("snapshot: begin: %w", err)
	}
	if _, err := s.conn.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(s.snap.name, "'", "''")+"'"); err != nil {
		return fmt.Errorf("snapshot: import %s: %w", s.snap.name, err)
	}
	// Hold ACCESS SHARE locks for the snapshot's duration, as pg_dump does:
	// a table-rewriting ALTER TABLE committed after the consistent point
	// would otherwise make the snapshot read the table as empty.
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = quoteTable(t)
	}
	if _, err := s.conn.Exec(ctx, "LOCK TABLE "+strings.Join(quoted, ", ")+" IN ACCESS SHARE MODE"); err != nil {
		return fmt.Errorf("snapshot: lock tables: %w", err)
	}
	s.snap.began, s.snap.at = true, time.Now()
	s.log.Info("snapshot started", "tables", len(tables), "consistent_point", s.snap.startLSN)
	return nil
}

// readSnapshot returns the next chunk of rows; after the last one it
// commits, starts streaming and returns the checkpoint of the slot's
// consistent point.
func (s *Source) readSnapshot(ctx context.Context) (cdc.Batch, error) {
	sn := s.snap
	for sn.idx < len(sn.tables) {
		t := sn.tables[sn.idx]
		if sn.schema == nil {
			if err := s.loadSnapshotSchema(ctx, t); err != nil {
				return cdc.Batch{}, err
			}
		}
		recs, err := s.readChunk(ctx, t)
		if err != nil {
			return cdc.Batch{}, err
		}
		if len(recs) < s.cfg.ChunkRows {
			s.log.Info("snapshot of table done", "table", t.String(), "rows", sn.rows)
			sn.idx++
			sn.schema, sn.lastKey, sn.rows = nil, nil, 0
			if sn.idx == len(sn.tables) && len(recs) > 0 {
				recs[len(recs)-1].Source.Snapshot = "last"
			}
		}
		if len(recs) > 0 {
			return cdc.Batch{Records: recs}, nil
		}
	}
	if _, err := s.conn.Exec(ctx, "COMMIT"); err != nil {
		return cdc.Batch{}, fmt.Errorf("snapshot: commit: %w", err)
	}
	start := sn.startLSN
	s.snap = nil
	if sn.completes.ID != 0 {
		s.resnapDone = sn.completes
	}
	s.log.Info("snapshot done; streaming", "from", start, "took", time.Since(sn.at).Round(time.Millisecond))
	if err := s.startStream(ctx, start, 0); err != nil {
		return cdc.Batch{}, err
	}
	return cdc.Batch{Checkpoint: s.checkpointAt(s.slot, start)}, nil
}

func (s *Source) loadSnapshotSchema(ctx context.Context, t cdc.TableID) error {
	meta := s.tables[t]
	rows, err := s.conn.Query(ctx, `SELECT attname, atttypid, atttypmod FROM pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, meta.oid)
	if err != nil {
		return fmt.Errorf("snapshot %s: read columns: %w", t, err)
	}
	var defs []columnDef
	for rows.Next() {
		var d columnDef
		if err := rows.Scan(&d.name, &d.oid, &d.typmod); err != nil {
			rows.Close()
			return fmt.Errorf("snapshot %s: read columns: %w", t, err)
		}
		defs = append(defs, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("snapshot %s: read columns: %w", t, err)
	}
	schema, err := s.buildSchema(ctx, meta, defs)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", t, err)
	}
	s.snap.schema = schema
	s.snap.keyIdx = s.snap.keyIdx[:0]
	for _, k := range schema.Key {
		for i, c := range schema.Columns {
			if c.Name == k {
				s.snap.keyIdx = append(s.snap.keyIdx, i)
			}
		}
	}
	return nil
}

// readChunk reads the next ChunkRows rows of t after the last key, in text
// format (the same text the stream delivers, parsed by the same code).
func (s *Source) readChunk(ctx context.Context, t cdc.TableID) ([]cdc.Record, error) {
	sn := s.snap
	cols := make([]string, len(sn.schema.Columns))
	for i, c := range sn.schema.Columns {
		cols[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	keys := make([]string, len(sn.schema.Key))
	params := make([]string, len(sn.schema.Key))
	for i, k := range sn.schema.Key {
		keys[i] = pgx.Identifier{k}.Sanitize()
		params[i] = fmt.Sprintf("$%d", i+1)
	}
	from := "ONLY " + quoteTable(t) // inheritance children are not captured
	if s.tables[t].partitioned {
		from = quoteTable(t) // published through its root: read every partition
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + from
	if sn.lastKey != nil {
		q += " WHERE (" + strings.Join(keys, ", ") + ") > (" + strings.Join(params, ", ") + ")"
	}
	q += fmt.Sprintf(" ORDER BY %s LIMIT %d", strings.Join(keys, ", "), s.cfg.ChunkRows)
	var args [][]byte
	if sn.lastKey != nil {
		args = sn.lastKey
	}
	res := s.conn.PgConn().ExecParams(ctx, q, args, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("snapshot %s: read chunk: %w", t, res.Err)
	}
	recs := make([]cdc.Record, 0, len(res.Rows))
	for _, raw := range res.Rows {
		row := make(cdc.Row, len(raw))
		for i, v := range raw {
			col := sn.schema.Columns[i]
			if v == nil {
				row[col.Name] = nil
				continue
			}
			val, err := parseText(col, v)
			if err != nil {
				return nil, fmt.Errorf("snapshot %s: column %s: %w", t, col.Name, err)
			}
			row[col.Name] = val
		}
		recs = append(recs, cdc.Record{
			Table:      t,
			Op:         cdc.OpRead,
			Key:        keyOf(sn.schema, row),
			After:      row,
			CommitTime: sn.at,
			Schema:     sn.schema,
			Source: cdc.SourceInfo{Connector: "postgresql", Name: s.cfg.ServerName, DB: s.db, Snapshot: "true",
				Extra: map[string]any{"lsn": int64(sn.startLSN)}},
		})
	}
	if n := len(res.Rows); n > 0 {
		last := res.Rows[n-1]
		sn.lastKey = make([][]byte, len(sn.keyIdx))
		for i, ki := range sn.keyIdx {
			sn.lastKey[i] = append([]byte(nil), last[ki]...)
		}
		sn.rows += int64(n)
	}
	s.reportSnapshot(sn.idx, sn.rows)
	return recs, nil
}

// keyOf picks the key columns out of a row.
func keyOf(schema *cdc.TableSchema, row cdc.Row) cdc.Row {
	k := make(cdc.Row, len(schema.Key))
	for _, c := range schema.Key {
		k[c] = row[c]
	}
	return k
}

// columnDef is one column as the catalog or a Relation message gives it.
type columnDef struct {
	name   string
	oid    uint32
	typmod int32
}

// buildSchema makes the schema of a table from its column definitions,
// loading any type it has not seen yet.
func (s *Source) buildSchema(ctx context.Context, meta *tableMeta, defs []columnDef) (*cdc.TableSchema, error) {
	var missing []uint32
	for _, d := range defs {
		if _, ok := s.types[d.oid]; !ok {
			missing = append(missing, d.oid)
		}
	}
	if len(missing) > 0 {
		loaded, err := loadTypes(ctx, s.conn, missing)
		if err != nil {
			return nil, fmt.Errorf("load column types: %w", err)
		}
		for k, v := range loaded {
			s.types[k] = v
		}
	}
	schema := &cdc.TableSchema{Table: meta.id, Key: meta.key}
	for _, d := range defs {
		col := columnFor(d.name, d.oid, d.typmod, s.types)
		col.Nullable = !meta.notNull[d.name]
		schema.Columns = append(schema.Columns, col)
	}
	for _, k := range meta.key {
		if _, ok := schema.Column(k); !ok {
			return nil, fmt.Errorf("key column %q of %s is not among its columns", k, meta.id)
		}
	}
	return schema, nil
}
