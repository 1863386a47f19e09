package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Sink modes.
const (
	// ModeUpsert keeps the latest image of every key: the last write per
	// key wins, deletes delete. It is the default.
	ModeUpsert = "upsert"
	// ModeInsert appends every create, read and update after-image as a
	// new row; deletes are skipped.
	ModeInsert = "insert"
	// ModeHistory appends every change (c, r, u and d) as a new row, with
	// the metadata columns __op, __position, __tx_id, __commit_time and
	// __seq.
	ModeHistory = "history"
)

// SinkConfig configures a Sink.
type SinkConfig struct {
	// DSN is the resolved connection string (never logged).
	DSN string
	// Mode is one of the Mode* constants; "" means ModeUpsert.
	Mode string
	// CreateTables creates missing destination tables, and adds missing
	// columns to existing ones, from the records' schemas.
	CreateTables bool
	// OffsetsTable is where the consumed Kafka offsets are stored, in the
	// same transaction as the rows; created if missing. An empty Schema
	// means "public".
	OffsetsTable cdc.TableID
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Sink is a cdc.Sink that writes into PostgreSQL tables. See cdc.Sink for
// the contract and SinkConfig for the options.
//
// A Write applies its batch with a few set-based statements per
// destination table, all in one transaction together with the consumed
// offsets: in upsert mode the batch is first reduced to one final state per
// key, the rows are loaded with COPY into a session temporary table and
// merged with one INSERT ... ON CONFLICT DO UPDATE, and deletes are applied
// with one DELETE ... USING. Insert and history modes COPY straight into the
// destination table.
type Sink struct {
	cfg  SinkConfig
	conf *pgx.ConnConfig
	log  *slog.Logger

	conn *pgx.Conn
	// mu guards tables, which Prepare reads from another goroutine, and
	// prepared.
	mu sync.Mutex
	// tables caches the destination tables' catalog data. A destTable is
	// not changed once cached (but for its checked set, which only the
	// writing goroutine uses): a table that changes gets a new one.
	tables map[cdc.TableID]*destTable
	// prepared are the plans Prepare made for batches not yet written.
	prepared []*preparedBatch
	// temps holds the temporary tables that exist in the current session,
	// by purpose, table and columns; pendingTemps those created by the
	// running transaction.
	temps, pendingTemps map[string]string
	tempSeq             int
	copyBuf             []byte // reused for COPY data
	// uncertain is set when a COMMIT failed without an answer: the batch
	// may have committed. The next Write checks the stored offsets first.
	uncertain bool
	// expect is what this sink knows the stored offsets to be (read by
	// Open, then moved by each commit). Write applies a batch only while
	// the stored offsets of its partitions still are these: a second
	// process applying the same pipeline, or an offsets reset, cannot make
	// this one apply a change twice.
	expect cdc.Offsets
}

var _ cdc.Sink = (*Sink)(nil)

// NewSink validates cfg and returns a sink; nothing connects until Open.
func NewSink(cfg SinkConfig) (*Sink, error) {
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeUpsert
	case ModeUpsert, ModeInsert, ModeHistory:
	default:
		return nil, fmt.Errorf("postgres sink: unknown mode %q (want %s, %s or %s)", cfg.Mode, ModeUpsert, ModeInsert, ModeHistory)
	}
	if cfg.DSN == "" {
		return nil, errors.New("postgres sink: dsn is empty")
	}
	conf, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: dsn: %w", redactErr(err))
	}
	if cfg.OffsetsTable.Schema == "" {
		cfg.OffsetsTable.Schema = "public"
	}
	if cfg.OffsetsTable.Name == "" {
		return nil, errors.New("postgres sink: offsets table is not set")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for k, v := range sessionParams {
		conf.RuntimeParams[k] = v
	}
	conf.RuntimeParams["application_name"] = "sluice-sink"
	return &Sink{cfg: cfg, conf: conf, log: cfg.Logger,
		tables: map[cdc.TableID]*destTable{}, temps: map[string]string{}, pendingTemps: map[string]string{}}, nil
}

// Open connects, creates the offsets table if it is missing and returns
// the offsets stored by the last committed Write (empty the first time).
func (s *Sink) Open(ctx context.Context) (cdc.Offsets, error) {
	if err := s.ensureConn(ctx); err != nil {
		return nil, err
	}
	if err := s.ensureOffsetsTable(ctx); err != nil {
		return nil, s.broken(err)
	}
	offs, err := s.readOffsets(ctx, s.conn)
	if err != nil {
		return nil, s.broken(err)
	}
	s.expect = maps.Clone(offs)
	s.log.Info("postgres sink open", "mode", s.cfg.Mode, "offsets_table", s.cfg.OffsetsTable.String(), "partitions", len(offs))
	return offs, nil
}

// Write applies b in one transaction: the records, then the offsets. On
// error nothing of b is visible. A connection that broke is replaced on the
// next call; when it broke under this call, Write retries once at once on a
// new connection (nothing of the failed attempt committed, or, when the
// COMMIT itself went unanswered, the stored offsets tell whether it did).
func (s *Sink) Write(ctx context.Context, b cdc.Applied) error {
	if len(b.Records) == 0 && len(b.Offsets) == 0 {
		return nil
	}
	err := s.write(ctx, b)
	var perm *cdc.PermanentError
	if err != nil && s.conn == nil && ctx.Err() == nil && !errors.As(err, &perm) {
		s.log.Warn("postgres sink: connection lost; retrying the batch on a new connection", "err", err)
		err = s.write(ctx, b)
	}
	return err
}

func (s *Sink) write(ctx context.Context, b cdc.Applied) error {
	if err := s.ensureConn(ctx); err != nil {
		return err
	}
	if s.uncertain && len(b.Offsets) > 0 {
		done, err := s.committed(ctx, b.Offsets)
		if err != nil {
			return s.broken(fmt.Errorf("postgres sink: check stored offsets: %w", err))
		}
		s.uncertain = false
		if done {
			s.log.Info("postgres sink: the batch whose commit went unanswered did commit; not applying it again")
			s.committedOffsets(b.Offsets)
			return nil
		}
	}
	s.uncertain = false
	groups, err := groupByTable(b.Records)
	if err != nil {
		return err
	}
	plans := s.takePrepared(b.Records)
	tx, err := s.beginLocked(ctx)
	if err != nil {
		return s.fail(ctx, nil, fmt.Errorf("postgres sink: %w", err))
	}
	if err := s.applyBatch(ctx, tx, groups, plans, b.Offsets); err != nil {
		return s.fenceFirst(ctx, b.Offsets, s.fail(ctx, tx, err))
	}
	if err := tx.Commit(ctx); err != nil {
		// An error response (a deferred constraint, a serialization
		// failure) means rolled back; anything else may have committed.
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Severity == "FATAL" || pe.Severity == "PANIC" {
			s.uncertain = true
		}
		return s.fail(ctx, nil, classify(fmt.Errorf("postgres sink: commit: %w", err)))
	}
	for k, v := range s.pendingTemps {
		s.temps[k] = v
	}
	clear(s.pendingTemps)
	s.committedOffsets(b.Offsets)
	return nil
}

// applyBatch applies a batch's records and stores its offsets, after
// checking the stored ones (checkOffsets), in transaction tx.
func (s *Sink) applyBatch(ctx context.Context, tx pgx.Tx, groups []*tableBatch, plans map[cdc.TableID]*upsertPlan, offs cdc.Offsets) error {
	if s.cfg.Mode == ModeUpsert {
		return s.writeUpserts(ctx, tx, groups, plans, offs)
	}
	if err := s.checkOffsets(ctx, tx, offs); err != nil {
		return err
	}
	for _, g := range groups {
		if err := s.applyTable(ctx, tx, g); err != nil {
			return err
		}
	}
	return s.storeOffsets(ctx, tx, offs)
}

// fenceFirst runs the offsets check (checkOffsets) again, in a
// transaction of its own, when a batch failed for good, and returns the
// check's error if it fails. The runtime sets the records of a batch that
// failed for good aside as dead letters, which it must not do for records
// another process applies in this pipeline's stead; and an upsert batch
// copies its rows into temporary tables before it checks the offsets, so a
// bad value can fail it before the check ran. Any other error is returned
// as it is.
func (s *Sink) fenceFirst(ctx context.Context, offs cdc.Offsets, err error) error {
	var perm *cdc.PermanentError
	if !errors.As(err, &perm) || s.expect == nil || len(offs) == 0 || s.conn == nil || ctx.Err() != nil {
		return err
	}
	tx, berr := s.beginLocked(ctx)
	if berr != nil {
		// Not permanent: the batch is tried again rather than set aside
		// unchecked.
		return s.fail(ctx, nil, fmt.Errorf("postgres sink: check offsets after a failed batch (%v): %w", err, berr))
	}
	cerr := s.checkOffsets(ctx, tx, offs)
	if rerr := tx.Rollback(context.WithoutCancel(ctx)); rerr != nil {
		return s.broken(fmt.Errorf("postgres sink: check offsets after a failed batch (%v): rollback: %w", err, rerr))
	}
	if cerr != nil {
		return cerr
	}
	return err
}

// Close disconnects.
func (s *Sink) Close(ctx context.Context) error {
	s.forgetPrepared()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close(ctx)
	s.conn = nil
	if err != nil {
		return fmt.Errorf("postgres sink: close: %w", err)
	}
	return nil
}

// Clear empties the given destination tables (those that exist) and deletes
// every stored offset, in one transaction, so that a replay from the
// earliest offsets rebuilds the tables.
func (s *Sink) Clear(ctx context.Context, tables []cdc.TableID) error {
	if err := s.ensureConn(ctx); err != nil {
		return err
	}
	if err := s.ensureOffsetsTable(ctx); err != nil {
		return s.broken(err)
	}
	tx, err := s.beginLocked(ctx)
	if err != nil {
		return s.fail(ctx, nil, fmt.Errorf("postgres sink: clear: %w", err))
	}
	var names []string
	for _, t := range tables {
		exists, err := tableExists(ctx, tx, t)
		if err != nil {
			return s.fail(ctx, tx, fmt.Errorf("postgres sink: clear %s: %w", t, err))
		}
		if !exists {
			s.log.Info("postgres sink: clear: table does not exist; nothing to empty", "table", t.String())
			continue
		}
		names = append(names, quoteTable(t))
	}
	if len(names) > 0 {
		if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(names, ", ")); err != nil {
			return s.fail(ctx, tx, classify(fmt.Errorf("postgres sink: clear: truncate: %w", err)))
		}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+quoteTable(s.cfg.OffsetsTable)); err != nil {
		return s.fail(ctx, tx, classify(fmt.Errorf("postgres sink: clear: delete offsets: %w", err)))
	}
	if err := tx.Commit(ctx); err != nil {
		return s.fail(ctx, nil, fmt.Errorf("postgres sink: clear: commit: %w", err))
	}
	s.expect = cdc.Offsets{}
	s.log.Info("postgres sink: cleared", "tables", len(names))
	return nil
}

// ensureConn connects when there is no live connection.
func (s *Sink) ensureConn(ctx context.Context) error {
	if s.conn != nil && !s.conn.IsClosed() {
		return nil
	}
	s.resetSession()
	conn, err := pgx.ConnectConfig(ctx, s.conf.Copy())
	if err != nil {
		err = fmt.Errorf("postgres sink: connect to %s:%d/%s: %w", s.conf.Host, s.conf.Port, s.conf.Database, redactErr(err))
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "28") || pe.Code == "3D000" || pe.Code == "42501") {
			return cdc.Permanent(err)
		}
		return err
	}
	s.conn = conn
	return nil
}

// resetSession forgets everything tied to the session and the catalog.
func (s *Sink) resetSession() {
	if s.conn != nil {
		s.conn.Close(context.Background()) //nolint:errcheck // it is broken already
		s.conn = nil
	}
	clear(s.temps)
	clear(s.pendingTemps)
	s.forgetDests()
	s.forgetPrepared() // made against the catalog data just forgotten
}

// fail ends a failed transaction and keeps the sink usable: the
// transaction is rolled back, the catalog cache (it may be stale, or hold
// DDL that was rolled back) and the session's temporary tables are dropped,
// and a broken connection is closed so that the next call reconnects.
func (s *Sink) fail(ctx context.Context, tx pgx.Tx, err error) error {
	s.forgetDests()
	clear(s.pendingTemps)
	if s.conn == nil || s.conn.IsClosed() || isConnErr(err) {
		return s.broken(err)
	}
	cctx := context.WithoutCancel(ctx)
	if tx != nil {
		if rerr := tx.Rollback(cctx); rerr != nil {
			return s.broken(err)
		}
	}
	if _, derr := s.conn.Exec(cctx, "DISCARD TEMP"); derr != nil {
		return s.broken(err)
	}
	clear(s.temps)
	return err
}

// broken drops the connection after err if it cannot be trusted anymore.
func (s *Sink) broken(err error) error {
	if s.conn == nil || s.conn.IsClosed() || isConnErr(err) {
		s.resetSession()
	}
	return err
}

// isConnErr tells errors after which the connection is not usable.
func isConnErr(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Severity == "FATAL" || pe.Severity == "PANIC"
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err)
}

// classify marks err permanent when retrying cannot fix it: data errors,
// constraint violations, undefined or mistyped objects, privileges. Server
// and connection trouble (serialization failures, deadlocks, shutdowns,
// lost connections, lack of resources) stays transient.
func classify(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	if pe.Detail != "" {
		err = fmt.Errorf("%w (%s)", err, pe.Detail)
	}
	if permanentCode(pe.Code) && !catalogRace(pe) {
		return cdc.Permanent(err)
	}
	return err
}

// catalogRace tells a unique violation in the system catalogs: two
// sessions creating the same table or schema at once (CREATE ... IF NOT
// EXISTS is not atomic against that). Retrying finds the object there.
func catalogRace(pe *pgconn.PgError) bool {
	if pe.Code != "23505" {
		return false
	}
	switch pe.ConstraintName {
	case "pg_type_typname_nsp_index", "pg_class_relname_nsp_index", "pg_namespace_nspname_index":
		return true
	}
	return false
}

func permanentCode(code string) bool {
	if len(code) < 2 {
		return false
	}
	switch code {
	case "42P01": // undefined table: a concurrent DROP; the retry reloads the catalog and says so
		return false
	}
	switch code[:2] {
	case "0A", // feature not supported
		"21", // cardinality violation
		"22", // data exception
		"23", // integrity constraint violation
		"27", // triggered data change violation
		"28", // invalid authorization
		"2B", "2F", "38", "39", "3F",
		"42", // syntax error or access rule violation
		"44", // with check option violation
		"P0": // raised by PL/pgSQL (a trigger)
		return true
	}
	return false
}

// preparedBatch is what Prepare made of a batch: an upsert plan per
// destination table whose catalog data it had. The batch is known by its
// records' backing array, which the plans keep from being reused.
type preparedBatch struct {
	first *cdc.Record
	n     int
	plans map[cdc.TableID]*upsertPlan
}

// maxPrepared bounds the plans kept for batches not yet written: the
// runner prepares at most two batches ahead of the one it writes.
const maxPrepared = 4

// Prepare does ahead of time the part of writing recs that needs neither
// the connection nor a transaction: in upsert mode, reducing each table's
// records to the final state of each key and rendering them as COPY text.
// The pipeline runtime calls it from the goroutine that polls and
// transforms, while the batch before is being written, and then calls
// Write with the same slice, unchanged; on a host with few CPUs that takes
// the work off the path the writes wait on. Write uses a plan only if the
// destination table's catalog data is still what the plan was made with,
// and otherwise does the work itself, so Prepare is never needed for
// correctness. It is safe to call concurrently with Write.
func (s *Sink) Prepare(recs []cdc.Record) {
	if s.cfg.Mode != ModeUpsert || len(recs) == 0 {
		return
	}
	groups, err := groupByTable(recs)
	if err != nil {
		return // Write meets the error again and reports it
	}
	plans := map[cdc.TableID]*upsertPlan{}
	for _, g := range groups {
		d := s.dest(g.id)
		if d == nil {
			continue // Write looks the table up (or creates it) first
		}
		if p, err := planUpsert(newFormatter(d), g, recordKey(g.recs)); err == nil {
			plans[g.id] = p
		}
	}
	if len(plans) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.prepared) >= maxPrepared {
		s.prepared = slices.Delete(s.prepared, 0, 1)
	}
	s.prepared = append(s.prepared, &preparedBatch{first: &recs[0], n: len(recs), plans: plans})
}

// takePrepared returns the plans Prepare made for recs (nil if none), and
// forgets them and those of the batches before.
func (s *Sink) takePrepared(recs []cdc.Record) map[cdc.TableID]*upsertPlan {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.prepared {
		if p.first == &recs[0] && p.n == len(recs) {
			s.prepared = slices.Delete(s.prepared, 0, i+1)
			return p.plans
		}
	}
	return nil
}

// forgetPrepared drops the plans of batches not written yet.
func (s *Sink) forgetPrepared() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prepared = nil
}

// dest returns the cached catalog data of table t (nil if not cached).
func (s *Sink) dest(t cdc.TableID) *destTable {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tables[t]
}

// setDest caches d as table t's catalog data.
func (s *Sink) setDest(t cdc.TableID, d *destTable) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tables[t] = d
}

// forgetDest drops table t's cached catalog data.
func (s *Sink) forgetDest(t cdc.TableID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tables, t)
}

// forgetDests drops all cached catalog data.
func (s *Sink) forgetDests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tables)
}
