package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// tableBatch is one destination table's records of a batch, in consumed
// order.
type tableBatch struct {
	id   cdc.TableID
	recs []*cdc.Record
}

// groupByTable splits records per destination table, tables in order of
// first appearance. Truncates are skipped: a destination is never emptied
// by a source's TRUNCATE.
func groupByTable(recs []cdc.Record) ([]*tableBatch, error) {
	var out []*tableBatch
	byID := map[cdc.TableID]*tableBatch{}
	for i := range recs {
		r := &recs[i]
		switch r.Op {
		case cdc.OpRead, cdc.OpCreate, cdc.OpUpdate, cdc.OpDelete:
		case cdc.OpTruncate:
			continue
		default:
			return nil, cdc.Permanent(fmt.Errorf("apply %s: record with unknown op %d", r.Table, r.Op))
		}
		if r.Table.Name == "" {
			return nil, cdc.Permanent(fmt.Errorf("apply: record without a destination table (op %s)", r.Op))
		}
		g := byID[r.Table]
		if g == nil {
			g = &tableBatch{id: r.Table}
			byID[r.Table] = g
			out = append(out, g)
		}
		g.recs = append(g.recs, r)
	}
	return out, nil
}

// errMissingColumns says that rows carry columns (outside their schema)
// that the destination lacks; formatter.missing lists them.
var errMissingColumns = errors.New("columns missing in the destination")

// applyTable applies one table's records in insert or history mode.
func (s *Sink) applyTable(ctx context.Context, tx pgx.Tx, g *tableBatch) error {
	var keyCols []string
	if s.cfg.Mode != ModeInsert {
		keyCols = recordKey(g.recs)
	}
	for attempt := 0; ; attempt++ {
		d, err := s.destFor(ctx, tx, g.id, g.recs, keyCols)
		if err != nil {
			return classify(fmt.Errorf("apply %s: %w", g.id, err))
		}
		f := newFormatter(d)
		err = s.applyAppend(ctx, tx, f, g, keyCols)
		if errors.Is(err, errMissingColumns) && attempt == 0 {
			if err = s.addColumns(ctx, tx, d, f.missing, nil); err == nil {
				s.forgetDest(g.id)
				continue
			}
		}
		if err != nil {
			return classify(fmt.Errorf("apply %s: %w", g.id, err))
		}
		return nil
	}
}

// tableStatement is a statement that applies rows of a table.
type tableStatement struct {
	table cdc.TableID
	sql   string
}

// writeUpserts applies an upsert-mode batch in few round trips. Each
// table's rows are first copied into temporary tables, which are private
// to the session: nothing another writer could see or wait for. Then one
// pipelined batch reads the stored offsets (see checkOffsets; the
// transaction holds the offsets lock from its start, see beginLocked),
// runs every table's DELETE and INSERT ... ON CONFLICT, and stores the new
// offsets. The destination tables are still written only after the check,
// and if the stored offsets are not the expected ones the caller rolls the
// transaction back, as before. The DELETEs, the upserts
// and the offsets store share one round trip instead of taking one each,
// which counts against a destination a WAN link away.
func (s *Sink) writeUpserts(ctx context.Context, tx pgx.Tx, groups []*tableBatch, plans map[cdc.TableID]*upsertPlan, offs cdc.Offsets) error {
	var stmts []tableStatement
	for _, g := range groups {
		st, err := s.stageUpsert(ctx, tx, g, plans[g.id])
		if err != nil {
			return err
		}
		stmts = append(stmts, st...)
	}
	batch := &pgx.Batch{}
	check := s.queueCheck(batch, offs)
	for _, st := range stmts {
		batch.Queue(st.sql)
	}
	storeSQL, storeArgs, store := s.storeOffsetsQuery(offs)
	if store {
		batch.Queue(storeSQL, storeArgs...)
	}
	if batch.Len() == 0 {
		return nil
	}
	br := tx.SendBatch(ctx, batch)
	err := func() error {
		if check {
			if err := s.readCheck(br, offs, s.exchangeError); err != nil {
				return err
			}
		}
		for _, st := range stmts {
			if _, err := br.Exec(); err != nil {
				return classify(fmt.Errorf("apply %s: %w", st.table, err))
			}
		}
		if store {
			if _, err := br.Exec(); err != nil {
				return s.storeError(err)
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = classify(fmt.Errorf("postgres sink: apply: %w", cerr))
	}
	return err
}

// stageUpsert copies one table's records, reduced to the last change per
// key, into temporary tables, and returns the statements that apply them.
// A plan Prepare made for them, if any, is used when the destination table
// is still the one it was made for.
func (s *Sink) stageUpsert(ctx context.Context, tx pgx.Tx, g *tableBatch, plan *upsertPlan) ([]tableStatement, error) {
	keyCols := recordKey(g.recs)
	for attempt := 0; ; attempt++ {
		d, err := s.destFor(ctx, tx, g.id, g.recs, keyCols)
		if err != nil {
			return nil, classify(fmt.Errorf("apply %s: %w", g.id, err))
		}
		f := newFormatter(d)
		if plan == nil || plan.d != d {
			plan, err = planUpsert(f, g, keyCols)
		}
		if errors.Is(err, errMissingColumns) && attempt == 0 {
			if err = s.addColumns(ctx, tx, d, f.missing, nil); err == nil {
				s.forgetDest(g.id)
				plan = nil
				continue
			}
		}
		var stmts []tableStatement
		if err == nil {
			stmts, err = s.loadUpsert(ctx, tx, g.id, plan)
		}
		if err != nil {
			return nil, classify(fmt.Errorf("apply %s: %w", g.id, err))
		}
		return stmts, nil
	}
}

// loadUpsert copies a plan's rows into temporary tables and returns the
// statements that apply them: the deletes, then one upsert per column set.
func (s *Sink) loadUpsert(ctx context.Context, tx pgx.Tx, id cdc.TableID, p *upsertPlan) ([]tableStatement, error) {
	var stmts []tableStatement
	if p.dels != nil {
		tmp, err := s.loadTemp(ctx, tx, "d", p.d, p.keyIdx, p.dels)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, tableStatement{id, deleteSQL(p.d, p.keyIdx, tmp)})
	}
	for _, gr := range p.groups {
		tmp, err := s.loadTemp(ctx, tx, "u", p.d, gr.cols, gr.data)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, tableStatement{id, upsertSQL(p.d, gr.cols, p.keyIdx, tmp)})
	}
	return stmts, nil
}

// recordKey names the key columns: the schema's key, else the Key row's
// columns.
func recordKey(recs []*cdc.Record) []string {
	for i := range recs {
		if sc := recs[i].Schema; sc != nil && len(sc.Key) > 0 {
			return sc.Key
		}
	}
	for i := range recs {
		if len(recs[i].Key) > 0 {
			return sortedKeys(recs[i].Key)
		}
	}
	return nil
}

// Column states in an image.
const (
	absent byte = iota
	present
	null
)

// image is a row in text form, by destination column index.
type image struct {
	vals  []string
	state []byte
}

// sig writes into b what identifies the image's set of present columns.
func (im *image) sig(b []byte) []byte {
	b = b[:0]
	for _, st := range im.state {
		if st != absent {
			b = append(b, '1')
		} else {
			b = append(b, '0')
		}
	}
	return b
}

// sameColumns tells whether two images have the same present columns.
func sameColumns(a, b *image) bool {
	for i, st := range a.state {
		if (st == absent) != (b.state[i] == absent) {
			return false
		}
	}
	return true
}

// columns returns the indexes of the present columns.
func (im *image) columns() []int {
	var cols []int
	for i, st := range im.state {
		if st != absent {
			cols = append(cols, i)
		}
	}
	return cols
}

// formatter turns rows into images of one destination table.
type formatter struct {
	d       *destTable
	slots   map[*cdc.TableSchema]map[string]slot
	missing []cdc.Column
	// Free space for images.
	images []image
	vals   []string
	states []byte
	// arena holds the text of numbers and times (see text).
	arena []byte
}

// slot is where a column of a record schema goes in the destination.
type slot struct {
	col       *cdc.Column // in the record schema
	idx       int         // the destination column; -1 when it lacks one
	generated bool        // the destination column is generated: not written
}

func newFormatter(d *destTable) *formatter {
	return &formatter{d: d, slots: map[*cdc.TableSchema]map[string]slot{}}
}

// newImage returns an empty image, carved from larger allocations.
func (f *formatter) newImage() *image {
	n := len(f.d.cols)
	if len(f.images) == 0 {
		const chunk = 256
		f.images = make([]image, chunk)
		f.vals = make([]string, chunk*n)
		f.states = make([]byte, chunk*n)
	}
	im := &f.images[0]
	f.images = f.images[1:]
	im.vals, f.vals = f.vals[:n:n], f.vals[n:]
	im.state, f.states = f.states[:n:n], f.states[n:]
	return im
}

// arenaChunk is the size of the formatter's arena chunks: a few hundred
// values each.
const arenaChunk = 16 << 10

// text is formatText, but the text of integers and times, which would
// each be a small allocation of its own, is written into the formatter's
// arena and the string returned points there. The arena is append-only: a
// chunk is never written again below its length, and a full one is left
// to the strings that point into it (and to the garbage collector once they
// are gone), so those strings never change.
func (f *formatter) text(col cdc.Column, v any) (string, error) {
	switch col.Kind {
	case cdc.KindInt16, cdc.KindInt32, cdc.KindInt64, cdc.KindDate, cdc.KindTimestamp, cdc.KindTimestampTZ:
		// A table without such columns never takes a chunk.
		if cap(f.arena)-len(f.arena) < 64 { // more than any text written here
			f.arena = make([]byte, 0, arenaChunk)
		}
	default:
		return formatText(col, v)
	}
	start := len(f.arena)
	switch col.Kind {
	case cdc.KindInt16, cdc.KindInt32, cdc.KindInt64:
		var n int64
		var ok bool
		switch x := v.(type) {
		case int16:
			n, ok = int64(x), col.Kind == cdc.KindInt16
		case int32:
			n, ok = int64(x), col.Kind == cdc.KindInt32
		case int64:
			n, ok = x, col.Kind == cdc.KindInt64
		}
		if !ok {
			return formatText(col, v) // for its error
		}
		f.arena = strconv.AppendInt(f.arena, n, 10)
	case cdc.KindDate, cdc.KindTimestamp, cdc.KindTimestampTZ:
		b, err := appendTemporal(f.arena, v, col.Kind != cdc.KindDate, col.Kind == cdc.KindTimestampTZ)
		if err != nil {
			return "", fmt.Errorf("format %s value: %w", col.Kind, err)
		}
		f.arena = b
	}
	if len(f.arena) == start {
		return "", nil
	}
	return unsafe.String(&f.arena[start], len(f.arena)-start), nil
}

// schemaSlots maps the columns of record schema sc to the destination's,
// once per schema: a record's columns then cost one lookup each.
func (f *formatter) schemaSlots(sc *cdc.TableSchema) map[string]slot {
	m := f.slots[sc]
	if m == nil {
		m = make(map[string]slot, len(sc.Columns))
		for i := range sc.Columns {
			c := &sc.Columns[i]
			sl := slot{col: c, idx: -1}
			if idx, ok := f.d.index[c.Name]; ok {
				sl.idx, sl.generated = idx, f.d.cols[idx].generated
			}
			m[c.Name] = sl
		}
		f.slots[sc] = m
	}
	return m
}

// set writes row's columns (only those named in only, when not nil) into
// im. A column the record schema lacks is typed from its value.
func (f *formatter) set(im *image, sc *cdc.TableSchema, row cdc.Row, only []string) error {
	var slots map[string]slot
	if sc != nil {
		slots = f.schemaSlots(sc)
	}
	put := func(name string, v any) error {
		sl, ok := slots[name]
		if !ok {
			sl = slot{idx: -1}
			if idx, ok := f.d.index[name]; ok {
				sl.idx, sl.generated = idx, f.d.cols[idx].generated
			}
			if sl.idx < 0 || (!sl.generated && v != nil) {
				c, err := inferColumn(name, v)
				if err != nil {
					return err
				}
				sl.col = &c
			}
		}
		if sl.idx < 0 {
			for _, m := range f.missing {
				if m.Name == name {
					return errMissingColumns
				}
			}
			f.missing = append(f.missing, *sl.col)
			return errMissingColumns
		}
		if sl.generated {
			return nil
		}
		if v == nil {
			im.state[sl.idx], im.vals[sl.idx] = null, ""
			return nil
		}
		text, err := f.text(*sl.col, v)
		if err != nil {
			return cdc.Permanent(fmt.Errorf("column %q: %w", name, err))
		}
		im.state[sl.idx], im.vals[sl.idx] = present, text
		return nil
	}
	var missing error
	note := func(err error) error {
		if errors.Is(err, errMissingColumns) {
			missing = err
			return nil
		}
		return err
	}
	if only != nil {
		for _, name := range only {
			if v, ok := row[name]; ok {
				if err := note(put(name, v)); err != nil {
					return err
				}
			}
		}
		return missing
	}
	for name, v := range row {
		if err := note(put(name, v)); err != nil {
			return err
		}
	}
	return missing
}

// keyText renders an image's key columns as one string, for reduction per
// key.
func keyText(im *image, keyIdx []int) (string, bool) {
	if len(keyIdx) == 1 && im.state[keyIdx[0]] == present {
		return im.vals[keyIdx[0]], true
	}
	var b strings.Builder
	for _, i := range keyIdx {
		switch im.state[i] {
		case absent:
			return "", false
		case null:
			b.WriteString("\x00;") // text values hold no NUL byte
		default:
			b.WriteString(strconv.Itoa(len(im.vals[i])))
			b.WriteByte(':')
			b.WriteString(im.vals[i])
		}
	}
	return b.String(), true
}

// upsertEntry is the final state of one key in a batch.
type upsertEntry struct {
	im *image
	// del: the key ends deleted. delFirst: the key was deleted in the
	// batch before its final image, which then replaces the row entirely.
	del, delFirst bool
}

// upsertPlan is one table's part of a batch in upsert mode, reduced to the
// final state of each key and rendered as COPY text: everything but the
// statements, so that Prepare can do it while the batch before is written.
type upsertPlan struct {
	d      *destTable // the table as the plan saw it
	keyIdx []int
	dels   []byte // key columns of the keys to delete first; nil for none
	groups []upsertGroup
}

// upsertGroup is the final images that have the same columns.
type upsertGroup struct {
	cols []int
	data []byte
}

// planUpsert reduces the records per key (the last change wins; an image
// with absent columns takes them from the key's earlier image in the
// batch), and renders the deletes and upserts to apply set-wise.
func planUpsert(f *formatter, g *tableBatch, keyCols []string) (*upsertPlan, error) {
	d := f.d
	if len(keyCols) == 0 {
		if len(d.uniques) == 0 || !d.pkFirst {
			return nil, cdc.Permanent(errors.New("upsert needs a key: the records carry none and the destination table has no primary key"))
		}
		keyCols = d.uniques[0]
	}
	conflict, ok := d.conflictKey(keyCols)
	if !ok {
		return nil, cdc.Permanent(fmt.Errorf("destination table has no primary key or unique index on (%s) to upsert on "+
			"(add one, or use mode insert or history)", strings.Join(quoteAll(keyCols), ", ")))
	}
	keyIdx := make([]int, len(conflict))
	for i, k := range conflict {
		keyIdx[i] = d.index[k]
	}
	entries := make([]*upsertEntry, 0, len(g.recs))
	byKey := make(map[string]int, len(g.recs))
	var missing error
	for i := range g.recs {
		r := g.recs[i]
		im := f.newImage()
		if r.Op == cdc.OpDelete {
			// The key columns from Key, else from the before image.
			if err := f.set(im, r.Schema, r.Key, conflict); err != nil {
				return nil, fmt.Errorf("key %s: %w", showKey(r.Key), err)
			}
			var lack []string
			for i, k := range conflict {
				if im.state[keyIdx[i]] == absent {
					lack = append(lack, k)
				}
			}
			if len(lack) > 0 {
				if err := f.set(im, r.Schema, r.Before, lack); err != nil {
					return nil, fmt.Errorf("key %s: %w", showKey(r.Key), err)
				}
			}
		} else {
			if r.After == nil {
				return nil, cdc.Permanent(fmt.Errorf("%s record without an after image (key %s)", r.Op, showKey(r.Key)))
			}
			err := f.set(im, r.Schema, r.After, nil)
			if errors.Is(err, errMissingColumns) {
				missing = err
			} else if err != nil {
				return nil, fmt.Errorf("key %s: %w", showKey(r.Key), err)
			}
			for _, k := range conflict {
				if im.state[d.index[k]] == absent {
					if v, ok := r.Key[k]; ok {
						if err := f.set(im, r.Schema, cdc.Row{k: v}, nil); err != nil {
							return nil, fmt.Errorf("key %s: %w", showKey(r.Key), err)
						}
					}
				}
			}
		}
		key, ok := keyText(im, keyIdx)
		if !ok {
			return nil, cdc.Permanent(fmt.Errorf("%s record lacks a value for a key column (%s); key %s",
				r.Op, strings.Join(quoteAll(conflict), ", "), showKey(r.Key)))
		}
		j, seen := byKey[key]
		if !seen {
			byKey[key] = len(entries)
			entries = append(entries, &upsertEntry{im: im, del: r.Op == cdc.OpDelete})
			continue
		}
		e := entries[j]
		switch {
		case r.Op == cdc.OpDelete:
			e.im, e.del = im, true
		case e.del:
			e.im, e.del, e.delFirst = im, false, true
		default:
			for c, st := range im.state {
				if st == absent && e.im.state[c] != absent {
					im.state[c], im.vals[c] = e.im.state[c], e.im.vals[c]
				}
			}
			e.im = im
		}
	}
	if missing != nil {
		return nil, missing
	}
	var dels []*image
	var groups [][]*image // by set of present columns, in order of appearance
	bySig := map[string]int{}
	var sig []byte
	for _, e := range entries {
		if e.del || e.delFirst {
			dels = append(dels, e.im)
		}
		if e.del {
			continue
		}
		if n := len(groups); n > 0 && sameColumns(groups[n-1][0], e.im) {
			groups[n-1] = append(groups[n-1], e.im)
			continue
		}
		sig = e.im.sig(sig)
		j, ok := bySig[string(sig)]
		if !ok {
			j = len(groups)
			bySig[string(sig)] = j
			groups = append(groups, nil)
		}
		groups[j] = append(groups[j], e.im)
	}
	p := &upsertPlan{d: d, keyIdx: keyIdx}
	if len(dels) > 0 {
		p.dels = appendCopyRows(make([]byte, 0, copySize(keyIdx, dels)), keyIdx, dels)
	}
	for _, rows := range groups {
		cols := rows[0].columns()
		data := appendCopyRows(make([]byte, 0, copySize(cols, rows)), cols, rows)
		p.groups = append(p.groups, upsertGroup{cols: cols, data: data})
	}
	return p, nil
}

// applyAppend writes insert and history modes: every record is a new row,
// written in consumed order (runs of rows with the same columns share a
// statement). A history table with a unique key on the record key, __op
// and __position (as create_tables makes it) skips changes it already
// holds: capture is at least once, so after a crash of the source a change
// can be on Kafka twice.
func (s *Sink) applyAppend(ctx context.Context, tx pgx.Tx, f *formatter, g *tableBatch, keyCols []string) error {
	d := f.d
	history := s.cfg.Mode == ModeHistory
	var dedupe []int // the unique key's columns, when changes are deduplicated
	if history && len(keyCols) > 0 {
		if u, ok := d.conflictKey(append(slices.Clone(keyCols), historyCols[0].name, historyCols[1].name)); ok {
			for _, c := range u {
				dedupe = append(dedupe, d.index[c])
			}
		}
	}
	var hidx [5]int
	if history {
		for i, h := range historyCols {
			hidx[i] = d.index[h.name]
		}
	}
	var rows []*image
	var missing error
	for i := range g.recs {
		r := g.recs[i]
		src := r.After
		if r.Op == cdc.OpDelete {
			if !history {
				continue
			}
			if src = r.Before; src == nil {
				src = r.Key
			}
		}
		if src == nil {
			return cdc.Permanent(fmt.Errorf("%s record without a row image (key %s)", r.Op, showKey(r.Key)))
		}
		im := f.newImage()
		err := f.set(im, r.Schema, src, nil)
		if errors.Is(err, errMissingColumns) {
			missing = err
		} else if err != nil {
			return fmt.Errorf("key %s: %w", showKey(r.Key), err)
		}
		if history {
			im.vals[hidx[0]], im.state[hidx[0]] = r.Op.String(), present
			// NULL, not "", where the source gives no position: such
			// changes cannot be told apart, and must not be merged.
			if pos := historyPosition(r); pos != "" {
				im.vals[hidx[1]], im.state[hidx[1]] = pos, present
			} else {
				im.state[hidx[1]] = null
			}
			if r.TxID != "" {
				im.vals[hidx[2]], im.state[hidx[2]] = r.TxID, present
			} else {
				im.state[hidx[2]] = null
			}
			if r.CommitTime.IsZero() {
				im.state[hidx[3]] = null
			} else {
				ts, err := formatTemporal(r.CommitTime.Truncate(time.Microsecond), true, true)
				if err != nil {
					return cdc.Permanent(fmt.Errorf("commit time: %w", err))
				}
				im.vals[hidx[3]], im.state[hidx[3]] = ts, present
			}
			im.vals[hidx[4]], im.state[hidx[4]] = strconv.FormatInt(r.Seq, 10), present
		}
		rows = append(rows, im)
	}
	if missing != nil {
		return missing
	}
	for start := 0; start < len(rows); {
		end := start + 1
		for end < len(rows) && sameColumns(rows[start], rows[end]) {
			end++
		}
		var err error
		if dedupe != nil {
			err = s.insertNewRows(ctx, tx, d, rows[start].columns(), dedupe, rows[start:end])
		} else {
			err = s.insertRows(ctx, tx, d, rows[start].columns(), rows[start:end])
		}
		if err != nil {
			return err
		}
		start = end
	}
	return nil
}

// historyPosition is the source position of a change as text: the
// PostgreSQL LSN (X/X), a MySQL GTID or binlog file:pos, or "".
func historyPosition(r *cdc.Record) string {
	x := r.Source.Extra
	if x == nil {
		return ""
	}
	switch v := x["lsn"].(type) {
	case int64:
		return pglogrepl.LSN(uint64(v)).String()
	case uint64:
		return pglogrepl.LSN(v).String()
	case int:
		return pglogrepl.LSN(uint64(v)).String()
	case float64:
		if v >= 0 && v < math.MaxUint64 {
			return pglogrepl.LSN(uint64(v)).String()
		}
	case string:
		if v != "" {
			return v
		}
	}
	if g, ok := x["gtid"].(string); ok && g != "" {
		return g
	}
	if file, ok := x["file"].(string); ok && file != "" {
		return file + ":" + numText(x["pos"])
	}
	return ""
}

func numText(v any) string {
	switch n := v.(type) {
	case nil:
		return ""
	case int64:
		return strconv.FormatInt(n, 10)
	case float64:
		return strconv.FormatFloat(n, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// showKey renders a key row for error messages.
func showKey(k cdc.Row) string {
	if len(k) == 0 {
		return "{}"
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, name := range sortedKeys(k) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %v", name, k[name])
	}
	b.WriteByte('}')
	return b.String()
}

// inferColumn describes a column that the record schema lacks from its Go
// value.
func inferColumn(name string, v any) (cdc.Column, error) {
	c := cdc.Column{Name: name, Nullable: true}
	k, err := kindOfValue(v)
	if err != nil {
		return c, cdc.Permanent(fmt.Errorf("column %q is not in the record schema and %w", name, err))
	}
	c.Kind = k
	if k == cdc.KindArray {
		c.Elem = cdc.KindString
		var find func(xs []any) bool
		find = func(xs []any) bool {
			for _, x := range xs {
				if sub, ok := x.([]any); ok {
					if find(sub) {
						return true
					}
				} else if x != nil {
					if ek, err := kindOfValue(x); err == nil {
						c.Elem = ek
						return true
					}
				}
			}
			return false
		}
		find(v.([]any))
	}
	return c, nil
}

func kindOfValue(v any) (cdc.Kind, error) {
	switch v.(type) {
	case nil:
		return cdc.KindString, nil
	case bool:
		return cdc.KindBool, nil
	case int16:
		return cdc.KindInt16, nil
	case int32:
		return cdc.KindInt32, nil
	case int64:
		return cdc.KindInt64, nil
	case float32:
		return cdc.KindFloat32, nil
	case float64:
		return cdc.KindFloat64, nil
	case cdc.Decimal:
		return cdc.KindDecimal, nil
	case string:
		return cdc.KindString, nil
	case []byte:
		return cdc.KindBytes, nil
	case time.Time, cdc.Infinity:
		return cdc.KindTimestampTZ, nil
	case time.Duration:
		return cdc.KindTime, nil
	case cdc.Interval:
		return cdc.KindInterval, nil
	case cdc.JSON:
		return cdc.KindJSON, nil
	case []any:
		return cdc.KindArray, nil
	}
	return cdc.KindUnknown, fmt.Errorf("its value has the unsupported type %T", v)
}
