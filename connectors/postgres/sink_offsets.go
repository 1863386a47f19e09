package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// querier is what both *pgx.Conn and pgx.Tx offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ensureOffsetsTable creates the offsets table (and its schema) unless it
// exists; with the table in place no CREATE privilege is needed.
func (s *Sink) ensureOffsetsTable(ctx context.Context) error {
	t := s.cfg.OffsetsTable
	exists, err := tableExists(ctx, s.conn, t)
	if err != nil {
		return fmt.Errorf("postgres sink: offsets table %s: %w", t, err)
	}
	if exists {
		return nil
	}
	if err := ensureSchema(ctx, s.conn, t.Schema); err != nil {
		return classify(fmt.Errorf("postgres sink: offsets table %s: %w", t, err))
	}
	_, err = s.conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+quoteTable(t)+` (
	topic text NOT NULL,
	partition integer NOT NULL,
	next_offset bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (topic, partition))`)
	if err != nil {
		return classify(fmt.Errorf("postgres sink: create offsets table %s: %w", t, err))
	}
	s.log.Info("postgres sink: created the offsets table", "table", t.String())
	return nil
}

// readOffsets returns every stored offset.
func (s *Sink) readOffsets(ctx context.Context, q querier) (cdc.Offsets, error) {
	rows, err := q.Query(ctx, `SELECT topic, partition, next_offset FROM `+quoteTable(s.cfg.OffsetsTable))
	if err != nil {
		return nil, classify(fmt.Errorf("postgres sink: read offsets: %w", err))
	}
	offs := cdc.Offsets{}
	var tp cdc.TopicPartition
	var next int64
	_, err = pgx.ForEachRow(rows, []any{&tp.Topic, &tp.Partition, &next}, func() error {
		offs[tp] = next
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Errorf("postgres sink: read offsets: %w", err))
	}
	return offs, nil
}

// storeOffsets upserts the offsets of the batch's partitions.
func (s *Sink) storeOffsets(ctx context.Context, tx pgx.Tx, offs cdc.Offsets) error {
	sql, args, ok := s.storeOffsetsQuery(offs)
	if !ok {
		return nil
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return s.storeError(err)
	}
	return nil
}

// storeOffsetsQuery is the statement that stores offs; false if offs is
// empty.
func (s *Sink) storeOffsetsQuery(offs cdc.Offsets) (string, []any, bool) {
	if len(offs) == 0 {
		return "", nil, false
	}
	tps := make([]cdc.TopicPartition, 0, len(offs))
	for tp := range offs {
		tps = append(tps, tp)
	}
	// A fixed order keeps concurrent writers of the same rows from
	// deadlocking.
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	topics := make([]string, len(tps))
	parts := make([]int32, len(tps))
	nexts := make([]int64, len(tps))
	for i, tp := range tps {
		topics[i], parts[i], nexts[i] = tp.Topic, tp.Partition, offs[tp]
	}
	return `INSERT INTO ` + quoteTable(s.cfg.OffsetsTable) + ` AS o (topic, partition, next_offset, updated_at)
	SELECT u.t, u.p, u.n, now() FROM unnest($1::text[], $2::integer[], $3::bigint[]) AS u(t, p, n)
	ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = EXCLUDED.updated_at`,
		[]any{topics, parts, nexts}, true
}

func (s *Sink) storeError(err error) error {
	return classify(fmt.Errorf("postgres sink: store offsets in %s: %w", s.cfg.OffsetsTable, err))
}

// checkOffsets locks the stored offsets of offs's partitions for the
// transaction (begun by beginLocked) and fails, retryably, unless they are
// what this sink expects: then another process applied batches of the
// pipeline since this sink read them (or an operator reset them), and
// applying this batch could apply changes twice. The runtime then opens the
// sink again and resumes from the stored offsets. A sink that was never
// opened checks nothing.
func (s *Sink) checkOffsets(ctx context.Context, tx pgx.Tx, offs cdc.Offsets) error {
	batch := &pgx.Batch{}
	if !s.queueCheck(batch, offs) {
		return nil
	}
	br := tx.SendBatch(ctx, batch)
	err := s.readCheck(br, offs, s.checkError)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = s.checkError(cerr)
	}
	return err
}

// queueCheck queues on batch the locking read of checkOffsets; false if
// there is nothing to check.
func (s *Sink) queueCheck(batch *pgx.Batch, offs cdc.Offsets) bool {
	if s.expect == nil || len(offs) == 0 {
		return false
	}
	batch.Queue(`SELECT topic, partition, next_offset FROM ` + quoteTable(s.cfg.OffsetsTable) + ` FOR UPDATE`)
	return true
}

// readCheck reads the results of what queueCheck queued and compares the
// stored offsets with those this sink expects; wrap describes an error
// reading them.
func (s *Sink) readCheck(br pgx.BatchResults, offs cdc.Offsets, wrap func(error) error) error {
	rows, err := br.Query()
	if err != nil {
		return wrap(err)
	}
	stored := cdc.Offsets{}
	var tp cdc.TopicPartition
	var next int64
	if _, err := pgx.ForEachRow(rows, []any{&tp.Topic, &tp.Partition, &next}, func() error {
		stored[tp] = next
		return nil
	}); err != nil {
		return wrap(err)
	}
	for tp := range offs {
		got, inStore := stored[tp]
		want, known := s.expect[tp]
		if inStore != known || got != want {
			return fmt.Errorf("postgres sink: the stored offset of %s[%d] in %s is %s, not %s as this pipeline left it: "+
				"another process applies this pipeline too, or its offsets were reset; resuming from the stored offsets",
				tp.Topic, tp.Partition, s.cfg.OffsetsTable, showOffset(got, inStore), showOffset(want, known))
		}
	}
	return nil
}

func (s *Sink) checkError(err error) error {
	return classify(fmt.Errorf("postgres sink: check offsets in %s: %w", s.cfg.OffsetsTable, err))
}

// exchangeError describes an error read with the offsets check at the head
// of an upsert batch's pipelined exchange (writeUpserts). The server holds
// the exchange's results back until its end (or until they fill its output
// buffer), and pgx first prepares the statements it has not cached, so the
// error may be any statement's.
func (s *Sink) exchangeError(err error) error {
	return classify(fmt.Errorf("postgres sink: apply batch (offsets check, deletes, upserts, offsets store): %w", err))
}

// beginLocked begins a transaction that holds the pipeline's advisory lock
// on its offsets table (offsetsLockKey) from its start: BEGIN and the lock
// take one round trip. Every writing transaction of the sink begins so.
//
// The lock serialises the writers of the pipeline, so that the later one
// sees the earlier one's commit when it checks the offsets (checkOffsets):
// row locks cannot cover a partition with no stored offset yet (a new
// pipeline, topic or partition, or after Clear). It is taken before
// anything else because an upsert batch does a lot before its check: it
// copies rows into temporary tables, may create one from a destination
// table, or create or alter a destination table, and pgx may prepare its
// statements, which locks the tables they name. A sink that waited for the
// offsets lock while holding a lock on a destination table could deadlock
// with the writer holding it.
func (s *Sink) beginLocked(ctx context.Context) (pgx.Tx, error) {
	tx, err := s.conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; " + s.lockOffsetsSQL()})
	if err == nil {
		return tx, nil
	}
	err = fmt.Errorf("begin and lock offsets in %s: %w", s.cfg.OffsetsTable, err)
	// The lock can fail (a lock_timeout, a cancel) in the transaction
	// BEGIN opened: end it. ROLLBACK outside a transaction only warns.
	if !s.conn.IsClosed() && !isConnErr(err) {
		if _, rerr := s.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			return nil, fmt.Errorf("%w (and then rollback: %w)", err, rerr)
		}
	}
	return nil, err
}

// lockOffsetsSQL takes the pipeline's advisory lock for the transaction.
func (s *Sink) lockOffsetsSQL() string {
	return "SELECT pg_advisory_xact_lock(" + strconv.FormatInt(s.offsetsLockKey(), 10) + ")"
}

// offsetsLockKey is the advisory lock key of the offsets table: the same
// for every sink of the pipeline (the table's name), in a key space of its
// own (the "sluice offsets" prefix).
func (s *Sink) offsetsLockKey() int64 {
	h := fnv.New64a()
	h.Write([]byte("sluice offsets " + quoteTable(s.cfg.OffsetsTable)))
	return int64(h.Sum64())
}

func showOffset(n int64, ok bool) string {
	if !ok {
		return "none"
	}
	return strconv.FormatInt(n, 10)
}

// committedOffsets records that offs are stored now.
func (s *Sink) committedOffsets(offs cdc.Offsets) {
	if s.expect == nil {
		return
	}
	maps.Copy(s.expect, offs)
}

// committed tells whether the stored offsets already reach offs: then the
// batch that carried them committed.
func (s *Sink) committed(ctx context.Context, offs cdc.Offsets) (bool, error) {
	stored, err := s.readOffsets(ctx, s.conn)
	if err != nil {
		return false, err
	}
	for tp, next := range offs {
		if got, ok := stored[tp]; !ok || got < next {
			return false, nil
		}
	}
	return true, nil
}

// tableExists looks t up in the catalog (tables, partitioned and foreign
// tables).
func tableExists(ctx context.Context, q querier, t cdc.TableID) (bool, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_class c
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'f')`, t.Schema, t.Name).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up table %s: %w", t, err)
	}
	return n > 0, nil
}

// ensureSchema creates schema name unless it exists.
func ensureSchema(ctx context.Context, q querier, name string) error {
	var n int
	if err := q.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = $1`, name).Scan(&n); err != nil {
		return fmt.Errorf("look up schema %s: %w", name, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := q.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create schema %s: %w", name, err)
	}
	return nil
}

// ResetOffsets replaces every stored offset with offs, in one transaction:
// the pipeline then resumes from offs, and from the start of any partition
// offs does not name. Empty offs means "replay everything".
func (s *Sink) ResetOffsets(ctx context.Context, offs cdc.Offsets) error {
	if err := s.ensureConn(ctx); err != nil {
		return err
	}
	if err := s.ensureOffsetsTable(ctx); err != nil {
		return s.broken(err)
	}
	tx, err := s.beginLocked(ctx)
	if err != nil {
		return s.fail(ctx, nil, fmt.Errorf("postgres sink: reset offsets: %w", err))
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+quoteTable(s.cfg.OffsetsTable)); err != nil {
		return s.fail(ctx, tx, classify(fmt.Errorf("postgres sink: reset offsets: %w", err)))
	}
	if err := s.storeOffsets(ctx, tx, offs); err != nil {
		return s.fail(ctx, tx, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return s.fail(ctx, nil, fmt.Errorf("postgres sink: reset offsets: commit: %w", err))
	}
	s.expect = maps.Clone(offs)
	if s.expect == nil {
		s.expect = cdc.Offsets{}
	}
	s.log.Info("postgres sink: offsets reset", "partitions", len(offs))
	return nil
}
