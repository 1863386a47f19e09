// Package postgres captures row changes from PostgreSQL through logical
// replication (the pgoutput plugin, read with jackc/pglogrepl): an initial
// snapshot that is exactly consistent with the replication slot's starting
// point, read in primary-key chunks, then the stream of committed changes.
//
// The source never writes to the captured tables. It owns one publication
// and one replication slot, both named from the Sluice instance and source
// name, and confirms an LSN to the server only after the capture runtime
// says everything up to it is durable in Kafka.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Snapshot modes.
const (
	SnapshotInitial    = "initial"     // snapshot on the first run, then stream
	SnapshotNever      = "never"       // stream only, from the slot's creation
	SnapshotWhenNeeded = "when_needed" // like initial, and again whenever the stored position cannot be resumed (slot lost)
)

// Config configures a Source.
type Config struct {
	// DSN is the resolved connection string (never log it).
	DSN string
	// Tables to capture.
	Tables []cdc.TableID
	// Slot and Publication are the names Sluice owns on the server.
	Slot, Publication string
	// Snapshot is one of the Snapshot* modes (default initial).
	Snapshot string
	// ChunkRows is how many rows one snapshot query reads (default 10000).
	ChunkRows int
	// Heartbeat is how often an idle source asks the server for its WAL
	// position so the slot keeps advancing (default 10s).
	Heartbeat time.Duration
	// ServerName is the envelope's source.name (<instance>.<source>).
	ServerName string
	Logger     *slog.Logger
	// SnapshotProgress, when set, is told the rows a snapshot read from a
	// table so far and the rows it expects to read (the planner's
	// estimate; 0 when the table was never analyzed): once for every
	// table when the snapshot starts, then after every chunk. It is
	// called from the goroutine that calls Read and must not block.
	SnapshotProgress func(table cdc.TableID, done, estimated int64)
	// Resnapshot, when set, is an operator's request to read some tables
	// again while the others keep streaming (see Open). It is done once a
	// checkpoint that records it (its ID and Nonce) is durable; a source
	// given the request its stored checkpoint records does nothing more
	// for it, so the runtime may pass the latest request on every start.
	Resnapshot *ResnapshotRequest
	// OnResnapshot, when set, is told that the snapshot of Resnapshot's
	// tables starts (done false) and that it is complete and durable
	// (done true; also at Open when the stored checkpoint says so). It is
	// called from the goroutines that call Open, Read and Ack and must not
	// block.
	OnResnapshot func(id int64, done bool)
}

// ResnapshotRequest asks for Tables to be read again. A request
// supersedes the earlier ones (it must name their tables too if they are
// not done).
//
// A request is done when the stored checkpoint records the same ID and
// Nonce, not when it records a higher ID: the IDs are kept elsewhere (the
// control plane's configs topic) than the checkpoint (the offsets topic),
// and if they were rebuilt apart, new requests 1, 2, ... would otherwise
// pass for done. The Nonce (random, given by the control plane) tells a
// new request from an old one with the same ID.
type ResnapshotRequest struct {
	ID     int64
	Nonce  string
	Tables []cdc.TableID
}

// resnapID identifies a resnapshot request in checkpoints; the zero value
// is none.
type resnapID struct {
	ID    int64
	Nonce string
}

func (r *ResnapshotRequest) ident() resnapID { return resnapID{r.ID, r.Nonce} }

// Source is a cdc.Source for PostgreSQL. See cdc.Source for the contract.
type Source struct {
	cfg Config
	log *slog.Logger

	conn *pgx.Conn      // catalog and snapshot queries
	repl *pgconn.PgConn // replication protocol
	db   string

	types  map[uint32]pgType
	tables map[cdc.TableID]*tableMeta

	slot      string    // the slot in use: Config.Slot or its alternate
	harvest   *harvest  // non-nil while replaying an old slot's changes
	dropOld   string    // old slot to drop once the new position is durable
	snap      *snapshot // non-nil while snapshotting
	streaming bool
	stream    streamState

	// resnapDone is the resnapshot request the checkpoints Read returns
	// record: the stored one until a snapshot that covers the request
	// is complete, then the request.
	resnapDone resnapID
	// Set by Open and only read afterwards (Ack runs concurrently):
	// oldSlot is the slot a resnapshot harvests, whose checkpoints do not
	// make the new slot's position durable; resnapWant is the request
	// this run completes (zero: none).
	oldSlot    string
	resnapWant resnapID

	// checkpointNow makes the stream return a checkpoint before anything
	// else: what it records changed though the position did not.
	checkpointNow bool

	acked         atomic.Uint64 // highest LSN the runtime acknowledged
	durable       atomic.Bool   // a checkpoint of the slot in use was acknowledged (the snapshot is on Kafka)
	resnapWasDone atomic.Bool   // OnResnapshot was told the request is done
}

// New returns a source; nothing connects until Open.
func New(cfg Config) *Source {
	if cfg.Snapshot == "" {
		cfg.Snapshot = SnapshotInitial
	}
	if cfg.ChunkRows <= 0 {
		cfg.ChunkRows = 10000
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Source{cfg: cfg, log: cfg.Logger, types: map[uint32]pgType{}, tables: map[cdc.TableID]*tableMeta{}}
}

// checkpoint is the durable state a Source resumes from.
type checkpoint struct {
	Version int    `json:"v"`
	Slot    string `json:"slot"`
	// LSN: every transaction whose commit record starts before it is
	// durable in Kafka.
	LSN string `json:"lsn"`
	// Resnapshot and ResnapshotNonce identify the latest resnapshot
	// request whose tables were read again, consistently with LSN, before
	// it (0: none). They are additions to version 1: older checkpoints
	// read as none, or as an ID without a nonce.
	Resnapshot      int64  `json:"resnapshot,omitempty"`
	ResnapshotNonce string `json:"resnapshot_nonce,omitempty"`
}

func (cp checkpoint) resnapshot() resnapID { return resnapID{cp.Resnapshot, cp.ResnapshotNonce} }

func encodeCheckpoint(slot string, lsn pglogrepl.LSN, resnapshot resnapID) cdc.Position {
	b, _ := json.Marshal(checkpoint{Version: 1, Slot: slot, LSN: lsn.String(),
		Resnapshot: resnapshot.ID, ResnapshotNonce: resnapshot.Nonce})
	return b
}

// checkpointAt is the checkpoint of a position of slot in this run.
func (s *Source) checkpointAt(slot string, lsn pglogrepl.LSN) cdc.Position {
	return encodeCheckpoint(slot, lsn, s.resnapDone)
}

func decodeCheckpoint(p cdc.Position) (checkpoint, pglogrepl.LSN, error) {
	var cp checkpoint
	if err := json.Unmarshal(p, &cp); err != nil {
		return cp, 0, fmt.Errorf("decode checkpoint: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(cp.LSN)
	if err != nil {
		return cp, 0, fmt.Errorf("decode checkpoint lsn %q: %w", cp.LSN, err)
	}
	return cp, lsn, nil
}

// sessionParams make every value's text form unambiguous and identical on
// the snapshot and the replication connections (output functions run in the
// walsender with that session's settings).
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, MDY",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"application_name":   "sluice",
	// A long snapshot transaction sits idle while Kafka applies
	// backpressure; a server-wide timeout must not kill it.
	"idle_in_transaction_session_timeout": "0",
	"statement_timeout":                   "0",
	// Row-level security would silently filter the snapshot; with it off,
	// a role that is subject to a policy gets an error instead.
	"row_security": "off",
}

// Open connects, checks the server and tables, prepares the publication and
// slot, and decides between resuming, streaming from scratch and
// snapshotting, following the snapshot mode.
//
// A source's slot alternates between two names (Config.Slot and
// altSlotName of it). When a snapshot has to be taken while a slot of ours
// still exists (a snapshot cut short by a crash, or state lost in Kafka),
// the new slot gets the other name and the old one is kept: it holds every
// change since it was created, and the deletes among them are replayed
// before the new snapshot, so a row that an interrupted snapshot already
// published and that was deleted in between does not stay alive on Kafka.
// The old slot is dropped once the new slot's position is durable.
//
// A resnapshot (Config.Resnapshot, not yet recorded in the stored
// checkpoint) uses the same alternation while the source resumes: the new
// slot is created with an exported snapshot at its consistent point P;
// the old slot is streamed from the stored position up to P, every change
// of every table, with checkpoints of the old slot (a crash resumes there
// and takes the resnapshot again); then the requested tables are read as
// of P (op r); then the new slot streams from P. Per key, everything
// before the snapshot rows is below P and everything after them above it.
// The checkpoint at P is the first to record the request as done.
func (s *Source) Open(ctx context.Context, from cdc.Position) error {
	if err := s.connect(ctx); err != nil {
		return err
	}
	if err := s.preflight(ctx); err != nil {
		return err
	}
	if err := s.connectReplication(ctx); err != nil {
		return err
	}
	if err := s.ensurePublication(ctx); err != nil {
		return err
	}
	base, alt := s.cfg.Slot, altSlotName(s.cfg.Slot)
	slots := map[string]slotState{}
	for _, name := range []string{base, alt} {
		st, err := s.slotInfo(ctx, name)
		if err != nil {
			return err
		}
		slots[name] = st
	}
	var resnap *ResnapshotRequest // a request this run has to carry out
	if from != nil {
		cp, lsn, err := decodeCheckpoint(from)
		if err != nil {
			return cdc.Permanent(err)
		}
		s.resnapDone = cp.resnapshot()
		resnap = s.pendingResnapshot()
		switch {
		case cp.Slot != base && cp.Slot != alt:
			s.log.Warn("stored position belongs to another slot; starting afresh", "stored_slot", cp.Slot, "slot", base)
		case slots[cp.Slot].exists && slots[cp.Slot].confirmed > lsn && s.cfg.Snapshot != SnapshotWhenNeeded:
			// We confirm only what is stored, so our slot is never ahead of
			// the stored position: this one was re-created since.
			return cdc.Permanent(fmt.Errorf("replication slot %q is at %s, ahead of the stored position %s: it was re-created "+
				"and the changes in between are lost to it. Set snapshot: when_needed to rebuild from a new snapshot of every "+
				"table (a resnapshot cannot: it resumes this slot from the stored position first)",
				cp.Slot, slots[cp.Slot].confirmed, lsn))
		case slots[cp.Slot].exists && slots[cp.Slot].confirmed > lsn:
			s.log.Warn("replication slot is ahead of the stored position (a snapshot was cut short); taking a new snapshot",
				"slot", cp.Slot, "stored_lsn", lsn, "slot_lsn", slots[cp.Slot].confirmed)
		case slots[cp.Slot].exists:
			s.slot = cp.Slot
			// The stored position is on this slot, so the other one is
			// not needed: a leftover of a snapshot or resnapshot cut short
			// before its first position was stored, or the old slot of one
			// that completed but was not dropped yet.
			if other := otherSlot(cp.Slot, base, alt); slots[other].exists {
				if err := s.dropSlot(ctx, other); err != nil {
					return err
				}
			}
			if resnap != nil {
				return s.beginResnapshot(ctx, resnap, cp.Slot, lsn)
			}
			return s.startStream(ctx, lsn, lsn)
		case s.cfg.Snapshot == SnapshotWhenNeeded:
			s.log.Warn("replication slot is gone; taking a new snapshot (snapshot: when_needed)", "slot", cp.Slot, "stored_lsn", lsn)
		default:
			return cdc.Permanent(fmt.Errorf("replication slot %q was dropped underneath Sluice: changes after LSN %s are lost to it. "+
				"Set snapshot: when_needed to rebuild from a new snapshot of every table (a resnapshot cannot: it resumes this "+
				"slot from the stored position first)", cp.Slot, lsn))
		}
	} else {
		resnap = s.pendingResnapshot()
	}
	// The oldest existing slot is the one whose changes matter; a younger
	// one is a leftover of an attempt that never got a stored position.
	var old *slotState
	for _, name := range []string{base, alt} {
		if st := slots[name]; st.exists && (old == nil || st.confirmed < old.confirmed) {
			old = &st
		}
	}
	if old != nil {
		if other := otherSlot(old.name, base, alt); slots[other].exists {
			if err := s.dropSlot(ctx, other); err != nil {
				return err
			}
		}
	}
	if s.cfg.Snapshot == SnapshotNever {
		if old != nil {
			s.slot = old.name
			if resnap != nil {
				return s.beginResnapshot(ctx, resnap, old.name, old.confirmed)
			}
			return s.startStream(ctx, old.confirmed, 0)
		}
		s.slot = base
		if resnap != nil {
			// No snapshot, except of the tables asked for.
			return s.beginResnapshot(ctx, resnap, "", 0)
		}
		lsn, err := s.createSlot(ctx, s.slot, "NOEXPORT_SNAPSHOT")
		if err != nil {
			return err
		}
		return s.startStream(ctx, lsn, 0)
	}
	// A snapshot of every table covers any resnapshot request too.
	if resnap != nil {
		s.resnapWant = resnap.ident()
		s.resnapDone = resnap.ident()
		s.notifyResnapshot(resnap.ID, false)
	}
	s.slot = base
	if old != nil {
		s.slot = otherSlot(old.name, base, alt)
	}
	if err := s.beginSnapshot(ctx, s.cfg.Tables); err != nil {
		return err
	}
	if old != nil {
		s.harvest = &harvest{slot: old.name, from: old.confirmed, until: s.snap.startLSN}
		s.dropOld = old.name
		s.log.Info("replaying deletes from the previous slot before the new snapshot",
			"old_slot", old.name, "from", old.confirmed, "until", s.snap.startLSN)
	}
	return nil
}

// pendingResnapshot returns the resnapshot request this run has to carry
// out, with only the tables still captured, or nil. The request the stored
// checkpoint (s.resnapDone) records is reported done; any other is not
// done, whatever its ID (see ResnapshotRequest).
func (s *Source) pendingResnapshot() *ResnapshotRequest {
	req := s.cfg.Resnapshot
	if req == nil {
		return nil
	}
	if req.ident() == s.resnapDone {
		s.resnapWant = req.ident()
		s.resnapWasDone.Store(true)
		s.notifyResnapshot(req.ID, true)
		return nil
	}
	var tables []cdc.TableID
	for _, t := range req.Tables {
		if _, ok := s.tables[t]; ok && !slices.Contains(tables, t) {
			tables = append(tables, t)
		} else if !ok {
			s.log.Warn("resnapshot: table is not captured (any more); skipping it", "table", t.String(), "resnapshot", req.ID)
		}
	}
	if len(tables) == 0 {
		// Nothing to read: the next checkpoint records it as done, and
		// the stream makes one at once rather than at the next change,
		// which may be long in coming on a quiet database.
		s.resnapWant, s.resnapDone = req.ident(), req.ident()
		s.checkpointNow = true
		return nil
	}
	return &ResnapshotRequest{ID: req.ID, Nonce: req.Nonce, Tables: tables}
}

// beginResnapshot starts a resnapshot of req's tables while oldSlot (the
// slot in use; "" for none) resumes at from: see Open. The other slot
// must not exist.
func (s *Source) beginResnapshot(ctx context.Context, req *ResnapshotRequest, oldSlot string, from pglogrepl.LSN) error {
	base, alt := s.cfg.Slot, altSlotName(s.cfg.Slot)
	if oldSlot != "" {
		s.slot = otherSlot(oldSlot, base, alt)
	}
	s.resnapWant = req.ident()
	s.notifyResnapshot(req.ID, false)
	if err := s.beginSnapshot(ctx, req.Tables); err != nil {
		return err
	}
	s.snap.completes = req.ident()
	names := make([]string, len(req.Tables))
	for i, t := range req.Tables {
		names[i] = t.String()
	}
	if oldSlot == "" {
		s.log.Info("resnapshot: reading tables before streaming", "resnapshot", req.ID, "tables", names)
		return nil
	}
	s.harvest = &harvest{slot: oldSlot, from: from, until: s.snap.startLSN, all: true}
	s.dropOld, s.oldSlot = oldSlot, oldSlot
	var backlog uint64
	if s.snap.startLSN > from {
		backlog = uint64(s.snap.startLSN - from)
	}
	s.log.Info("resnapshot: streaming the current slot up to the new consistent point, then reading the tables again",
		"resnapshot", req.ID, "tables", names, "old_slot", oldSlot, "from", from, "new_slot", s.slot, "until", s.snap.startLSN,
		"catch_up_wal_bytes", backlog)
	if backlog >= largeCatchUp {
		// The snapshot transaction and its locks are already taken: they
		// must be, from the consistent point on (see beginSnapshot).
		s.log.Warn("resnapshot: a large WAL backlog to stream before the tables are read; meanwhile the chosen tables "+
			"stay locked in ACCESS SHARE mode, so DDL on them (ALTER TABLE, DROP, TRUNCATE, VACUUM FULL) waits, and "+
			"queries queued behind such DDL wait too", "resnapshot", req.ID, "tables", names, "catch_up_wal_bytes", backlog)
	}
	return nil
}

// largeCatchUp is the WAL backlog (bytes between the stored position and
// a resnapshot's consistent point) above which the catch-up, during which
// the chosen tables are locked, is worth a warning.
const largeCatchUp = 1 << 30

func (s *Source) notifyResnapshot(id int64, done bool) {
	if s.cfg.OnResnapshot != nil {
		s.cfg.OnResnapshot(id, done)
	}
}

func otherSlot(name, base, alt string) string {
	if name == base {
		return alt
	}
	return base
}

// Read returns the next snapshot chunk or the next changes from the stream.
func (s *Source) Read(ctx context.Context) (cdc.Batch, error) {
	if s.harvest != nil {
		return s.readHarvest(ctx)
	}
	if s.snap != nil {
		return s.readSnapshot(ctx)
	}
	return s.readStream(ctx)
}

// Ack records that everything up to upTo is durable; the next standby
// status update confirms it to the server.
func (s *Source) Ack(_ context.Context, upTo cdc.Position) error {
	cp, lsn, err := decodeCheckpoint(upTo)
	if err != nil {
		return err
	}
	// A position of the slot a resnapshot harvests says nothing about the
	// new slot's: the old slot must stay until one of those is durable.
	if s.oldSlot == "" || cp.Slot != s.oldSlot {
		s.durable.Store(true)
	}
	if s.resnapWant.ID != 0 && cp.resnapshot() == s.resnapWant && s.resnapWasDone.CompareAndSwap(false, true) {
		s.notifyResnapshot(s.resnapWant.ID, true)
	}
	for {
		cur := s.acked.Load()
		if uint64(lsn) <= cur || s.acked.CompareAndSwap(cur, uint64(lsn)) {
			return nil
		}
	}
}

// Close confirms the last acknowledged position and disconnects.
func (s *Source) Close(ctx context.Context) error {
	var errs []error
	if s.harvest != nil && s.harvest.conn != nil {
		errs = append(errs, s.harvest.conn.Close(ctx))
	}
	if s.repl != nil {
		if s.streaming {
			errs = append(errs, s.sendStatus(ctx, false))
		}
		errs = append(errs, s.repl.Close(ctx))
	}
	if s.conn != nil {
		errs = append(errs, s.conn.Close(ctx))
	}
	return errors.Join(errs...)
}

func (s *Source) connect(ctx context.Context) error {
	cc, err := pgx.ParseConfig(s.cfg.DSN)
	if err != nil {
		return cdc.Permanent(fmt.Errorf("postgres dsn: %w", redactErr(err)))
	}
	for k, v := range sessionParams {
		cc.RuntimeParams[k] = v
	}
	s.db = cc.Database
	if s.conn, err = pgx.ConnectConfig(ctx, cc); err != nil {
		return permanentIfPrivilege(fmt.Errorf("connect to %s:%d/%s: %w", cc.Host, cc.Port, cc.Database, redactErr(err)))
	}
	return nil
}

// connectReplication opens the replication-protocol connection (after
// preflight, which explains a missing REPLICATION privilege better than the
// server's refusal would).
func (s *Source) connectReplication(ctx context.Context) error {
	var err error
	s.repl, err = s.replConn(ctx)
	return err
}

// replConn opens a replication-protocol connection with Sluice's session
// settings.
func (s *Source) replConn(ctx context.Context) (*pgconn.PgConn, error) {
	rc, err := pgconn.ParseConfig(s.cfg.DSN)
	if err != nil {
		return nil, cdc.Permanent(fmt.Errorf("postgres dsn: %w", redactErr(err)))
	}
	for k, v := range sessionParams {
		rc.RuntimeParams[k] = v
	}
	rc.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, rc)
	if err != nil {
		return nil, permanentIfPrivilege(fmt.Errorf("open replication connection to %s:%d/%s: %w", rc.Host, rc.Port, rc.Database, redactErr(err)))
	}
	return conn, nil
}

// redactErr keeps pgx's connection errors but not a DSN they might quote.
func redactErr(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("cannot parse connection string (not shown: it may hold a password)")
	}
	return err
}
