package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// maxBatch caps how many records of one large transaction a Read returns.
const maxBatch = 2000

// streamState is the position bookkeeping of the replication stream.
type streamState struct {
	slot string // the slot streamed, named in checkpoints
	// resume: transactions whose commit record starts before it are already
	// durable in Kafka and are skipped (the server may resend them when its
	// confirmed position lags ours).
	resume    pglogrepl.LSN
	relations map[uint32]*relation

	inTx bool
	tx   txState

	walEnd     pglogrepl.LSN // newest server WAL position seen in a keepalive
	lastCp     pglogrepl.LSN // newest checkpoint handed to the runtime
	lastStatus time.Time     // last standby status update sent
	lastSent   uint64        // LSN that update confirmed
	lastBeat   time.Time     // last time we asked the server for its position
}

type txState struct {
	final  pglogrepl.LSN
	xid    uint32
	commit time.Time
	seq    int64
	skip   bool
	id     string
}

// relation is a table as the stream describes it.
type relation struct {
	id       cdc.TableID
	schema   *cdc.TableSchema
	isKey    []bool // per column: part of the record key
	identity uint8  // replica identity: 'd', 'n', 'f', 'i'
	ignored  bool   // not captured (any more): its changes are skipped
}

// startStream starts replication at from; transactions committed before
// resume are skipped.
func (s *Source) startStream(ctx context.Context, from, resume pglogrepl.LSN) error {
	err := pglogrepl.StartReplication(ctx, s.repl, s.slot, from, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + s.cfg.Publication + "'"},
	})
	if err != nil {
		return classifyStreamErr(fmt.Errorf("start replication on slot %s at %s: %w", s.slot, from, err), s.slot)
	}
	s.streaming = true
	s.stream = streamState{slot: s.slot, resume: resume, relations: map[uint32]*relation{}, lastCp: max(from, resume), lastStatus: time.Now(), lastBeat: time.Now()}
	if uint64(from) > s.acked.Load() {
		s.acked.Store(uint64(from))
	}
	s.log.Info("streaming", "slot", s.slot, "from", from)
	return nil
}

// readStream returns the changes of the next transaction (or a part of a
// large one), or a checkpoint-only batch when an idle stream moved on.
func (s *Source) readStream(ctx context.Context) (cdc.Batch, error) {
	var b cdc.Batch
	st := &s.stream
	if s.checkpointNow {
		// Everything before st.lastCp is durable already (the stored
		// position, or a snapshot's end): a checkpoint there is true.
		s.checkpointNow = false
		return cdc.Batch{Checkpoint: s.checkpointAt(st.slot, st.lastCp)}, nil
	}
	for {
		if err := s.maybeSendStatus(ctx); err != nil {
			return cdc.Batch{}, err
		}
		if err := s.maybeDropOldSlot(ctx); err != nil {
			return cdc.Batch{}, err
		}
		m, err := receive(ctx, s.repl)
		if err != nil {
			if ctx.Err() != nil {
				return cdc.Batch{}, ctx.Err()
			}
			return cdc.Batch{}, classifyStreamErr(fmt.Errorf("receive from slot %s: %w", s.slot, err), s.slot)
		}
		switch {
		case m.timeout:
			if len(b.Records) > 0 {
				return b, nil
			}
		case m.keepalive != nil:
			st.walEnd = max(st.walEnd, m.keepalive.ServerWALEnd)
			if m.keepalive.ReplyRequested {
				if err := s.sendStatus(ctx, false); err != nil {
					return cdc.Batch{}, err
				}
			}
			// Idle: nothing of ours is between the last checkpoint and the
			// server's position, so that position is a checkpoint too.
			// Storing it lets the slot advance on a quiet database.
			if !st.inTx && len(b.Records) == 0 && st.walEnd > st.lastCp {
				st.lastCp = st.walEnd
				return cdc.Batch{Checkpoint: s.checkpointAt(st.slot, st.walEnd)}, nil
			}
		case m.xld != nil:
			done, err := s.handle(ctx, st, *m.xld, &b)
			if err != nil {
				return cdc.Batch{}, err
			}
			if done || len(b.Records) >= maxBatch {
				return b, nil
			}
		}
	}
}

// replMsg is what one receive got: a keepalive, WAL data, or nothing
// within the poll interval (or a message of no interest: all fields zero).
type replMsg struct {
	timeout   bool
	keepalive *pglogrepl.PrimaryKeepaliveMessage
	xld       *pglogrepl.XLogData
}

// receive waits up to a second for the next message of a replication
// stream, so callers get regular chances to send status updates.
func receive(ctx context.Context, conn *pgconn.PgConn) (replMsg, error) {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	msg, err := conn.ReceiveMessage(rctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && pgconn.Timeout(err) {
			return replMsg{timeout: true}, nil
		}
		return replMsg{}, err
	}
	switch m := msg.(type) {
	case *pgproto3.ErrorResponse:
		return replMsg{}, pgconn.ErrorResponseToPgError(m)
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return replMsg{}, nil
		}
		switch m.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
			if err != nil {
				return replMsg{}, fmt.Errorf("parse keepalive: %w", err)
			}
			return replMsg{keepalive: &ka}, nil
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil {
				return replMsg{}, fmt.Errorf("parse xlog data: %w", err)
			}
			return replMsg{xld: &xld}, nil
		}
	}
	return replMsg{}, nil
}

// handle decodes one logical replication message; it returns true when a
// transaction ended and the batch should go out.
func (s *Source) handle(ctx context.Context, st *streamState, xld pglogrepl.XLogData, b *cdc.Batch) (bool, error) {
	msg, err := pglogrepl.Parse(xld.WALData)
	if err != nil {
		return false, fmt.Errorf("parse logical replication message at %s: %w", xld.WALStart, err)
	}
	done, err := s.apply(ctx, st, msg, xld.WALStart, b)
	if errors.Is(err, errIgnored) {
		return false, nil
	}
	return done, err
}

// errIgnored marks a change of a relation that is not captured.
var errIgnored = errors.New("relation not captured")

// apply turns one decoded message into records and state changes.
func (s *Source) apply(ctx context.Context, st *streamState, msg pglogrepl.Message, walStart pglogrepl.LSN, b *cdc.Batch) (bool, error) {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		rel, err := s.relationFrom(ctx, m)
		if err != nil {
			return false, err
		}
		st.relations[m.RelationID] = rel
	case *pglogrepl.BeginMessage:
		st.inTx = true
		st.tx = txState{final: m.FinalLSN, xid: m.Xid, commit: m.CommitTime, skip: m.FinalLSN < st.resume,
			id: strconv.FormatUint(uint64(m.Xid), 10) + ":" + strconv.FormatUint(uint64(m.FinalLSN), 10)}
	case *pglogrepl.CommitMessage:
		st.inTx = false
		if st.tx.skip || m.TransactionEndLSN <= st.lastCp {
			return len(b.Records) > 0, nil
		}
		st.lastCp = m.TransactionEndLSN
		b.Checkpoint = s.checkpointAt(st.slot, m.TransactionEndLSN)
		return true, nil
	case *pglogrepl.InsertMessage:
		if st.tx.skip {
			return false, nil
		}
		rel, err := st.rel(m.RelationID)
		if err != nil {
			return false, err
		}
		after, err := rel.row(m.Tuple, false)
		if err != nil {
			return false, err
		}
		b.Records = append(b.Records, s.record(st, rel, cdc.OpCreate, keyOf(rel.schema, after), nil, after, walStart))
	case *pglogrepl.UpdateMessage:
		if st.tx.skip {
			return false, nil
		}
		rel, err := st.rel(m.RelationID)
		if err != nil {
			return false, err
		}
		after, err := rel.row(m.NewTuple, false)
		if err != nil {
			return false, err
		}
		var before cdc.Row
		if m.OldTuple != nil {
			if before, err = rel.row(m.OldTuple, m.OldTupleType == pglogrepl.UpdateMessageTupleTypeKey); err != nil {
				return false, err
			}
		}
		newKey := keyOf(rel.schema, after)
		if before != nil && !sameKey(rel.schema, before, after) {
			// A key change is a delete of the old key and an insert of the
			// new one, so each Kafka key keeps a truthful history.
			b.Records = append(b.Records,
				s.record(st, rel, cdc.OpDelete, keyOf(rel.schema, before), before, nil, walStart),
				s.record(st, rel, cdc.OpCreate, newKey, nil, after, walStart))
			return false, nil
		}
		b.Records = append(b.Records, s.record(st, rel, cdc.OpUpdate, newKey, before, after, walStart))
	case *pglogrepl.DeleteMessage:
		if st.tx.skip {
			return false, nil
		}
		rel, err := st.rel(m.RelationID)
		if err != nil {
			return false, err
		}
		before, err := rel.row(m.OldTuple, m.OldTupleType == pglogrepl.DeleteMessageTupleTypeKey)
		if err != nil {
			return false, err
		}
		b.Records = append(b.Records, s.record(st, rel, cdc.OpDelete, keyOf(rel.schema, before), before, nil, walStart))
	case *pglogrepl.TruncateMessage:
		// Not captured, as in Debezium's default: a truncate has no key, and
		// compacted topics refuse keyless records. Say so loudly: the rows
		// stay alive on Kafka and downstream, and reading the table again
		// (a resnapshot or a new snapshot) does not remove them, since a
		// read only says which rows exist.
		for _, id := range m.RelationIDs {
			if rel, err := st.rel(id); err == nil {
				s.log.Warn("TRUNCATE is not captured: the table's rows stay on Kafka and in destinations, and no resnapshot or "+
					"new snapshot removes them; delete them downstream, or capture into new topics (the source under a new "+
					"name) and replay the pipelines from those with --clear",
					"table", rel.id.String())
			}
		}
	}
	return false, nil
}

func (st *streamState) rel(id uint32) (*relation, error) {
	rel, ok := st.relations[id]
	if !ok {
		return nil, fmt.Errorf("change for relation %d before its Relation message", id)
	}
	if rel.ignored {
		return nil, errIgnored
	}
	return rel, nil
}

// record builds a stream record inside the current transaction.
func (s *Source) record(st *streamState, rel *relation, op cdc.Op, key, before, after cdc.Row, lsn pglogrepl.LSN) cdc.Record {
	tx := &st.tx
	tx.seq++
	pos := make(cdc.Position, 0, 16)
	pos = append(pos, []byte(tx.final.String())...)
	pos = append(pos, ':')
	pos = strconv.AppendInt(pos, tx.seq, 10)
	return cdc.Record{
		Table: rel.id, Op: op, Key: key, Before: before, After: after,
		Position: pos, TxID: tx.id, Seq: tx.seq, CommitTime: tx.commit, Schema: rel.schema,
		Source: cdc.SourceInfo{Connector: "postgresql", Name: s.cfg.ServerName, DB: s.db, Snapshot: "false",
			Extra: map[string]any{"lsn": int64(lsn), "txId": int64(tx.xid)}},
	}
}

// relationFrom turns a Relation message into the schema used for the
// changes that follow it; a changed table (columns added or dropped) sends
// a new Relation message before its next change.
func (s *Source) relationFrom(ctx context.Context, m *pglogrepl.RelationMessage) (*relation, error) {
	id := cdc.TableID{Schema: m.Namespace, Name: m.RelationName}
	meta, ok := s.tables[id]
	if !ok {
		// A table removed from the spec still streams the changes made
		// before the publication dropped it.
		s.log.Warn("ignoring changes of a table that is no longer captured", "table", id.String())
		return &relation{id: id, ignored: true}, nil
	}
	// NOT NULL flags may have changed along with the columns.
	fresh, err := s.loadTable(ctx, id)
	if err == nil {
		meta = fresh
		s.tables[id] = fresh
	}
	defs := make([]columnDef, len(m.Columns))
	for i, c := range m.Columns {
		defs[i] = columnDef{name: c.Name, oid: c.DataType, typmod: c.TypeModifier}
	}
	schema, err := s.buildSchema(ctx, meta, defs)
	if err != nil {
		return nil, fmt.Errorf("relation %s: %w", id, err)
	}
	rel := &relation{id: id, schema: schema, isKey: make([]bool, len(defs)), identity: m.ReplicaIdentity}
	for i, c := range schema.Columns {
		for _, k := range schema.Key {
			if c.Name == k {
				rel.isKey[i] = true
			}
		}
	}
	s.log.Debug("relation", "table", id.String(), "columns", len(defs))
	return rel, nil
}

// row decodes a tuple. keyOnly: the tuple is an old key ('K'), whose
// non-key columns the server sends as NULL though they are unknown, so they
// are left absent. Unchanged TOASTed values ('u') are absent too.
func (r *relation) row(t *pglogrepl.TupleData, keyOnly bool) (cdc.Row, error) {
	if t == nil {
		return nil, fmt.Errorf("table %s: missing tuple", r.id)
	}
	if len(t.Columns) != len(r.schema.Columns) {
		return nil, fmt.Errorf("table %s: tuple has %d columns, relation %d", r.id, len(t.Columns), len(r.schema.Columns))
	}
	row := make(cdc.Row, len(t.Columns))
	for i, c := range t.Columns {
		col := r.schema.Columns[i]
		if keyOnly && !r.isKey[i] {
			continue
		}
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			row[col.Name] = nil
		case pglogrepl.TupleDataTypeToast:
			// absent: the value did not change and was not sent
		case pglogrepl.TupleDataTypeText:
			v, err := parseText(col, c.Data)
			if err != nil {
				return nil, fmt.Errorf("table %s column %s: %w", r.id, col.Name, err)
			}
			row[col.Name] = v
		default:
			return nil, fmt.Errorf("table %s column %s: unexpected tuple data type %q", r.id, col.Name, c.DataType)
		}
	}
	return row, nil
}

// sameKey compares the key columns of two rows by their text form.
func sameKey(schema *cdc.TableSchema, a, b cdc.Row) bool {
	for _, k := range schema.Key {
		av, aok := a[k]
		bv, bok := b[k]
		if !aok || !bok {
			continue
		}
		if !bytes.Equal([]byte(fmt.Sprint(av)), []byte(fmt.Sprint(bv))) {
			return false
		}
	}
	return true
}

// maybeSendStatus confirms newly acknowledged positions promptly and asks
// the server for its WAL position every heartbeat.
func (s *Source) maybeSendStatus(ctx context.Context) error {
	st := &s.stream
	beat := time.Since(st.lastBeat) >= s.cfg.Heartbeat
	if !beat && s.acked.Load() == st.lastSent && time.Since(st.lastStatus) < s.cfg.Heartbeat {
		return nil
	}
	if beat {
		st.lastBeat = time.Now()
	}
	return s.sendStatus(ctx, beat)
}

// sendStatus confirms the acknowledged LSN as written, flushed and applied.
func (s *Source) sendStatus(ctx context.Context, reply bool) error {
	acked := s.acked.Load()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(acked),
		WALFlushPosition: pglogrepl.LSN(acked),
		WALApplyPosition: pglogrepl.LSN(acked),
		ClientTime:       time.Now(),
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("send standby status to slot %s: %w", s.slot, err)
	}
	s.stream.lastStatus, s.stream.lastSent = time.Now(), acked
	return nil
}

// classifyStreamErr makes a dropped slot a clear, permanent error.
func classifyStreamErr(err error, slot string) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42704" {
		return cdc.Permanent(fmt.Errorf("replication slot %q was dropped underneath Sluice (%s): changes since the last "+
			"confirmed position may be lost to it; set snapshot: when_needed to rebuild from a new snapshot of every table "+
			"(a resnapshot cannot: it resumes this slot first): %w", slot, pe.Message, err))
	}
	return err
}
