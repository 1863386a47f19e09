package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// tableMeta is what the catalog says about a captured table.
type tableMeta struct {
	id          cdc.TableID
	oid         uint32
	partitioned bool
	key         []string        // replica identity index (or primary key) columns, in order
	notNull     map[string]bool // NOT NULL columns
}

// preflight checks everything that would otherwise fail later with a
// less helpful message: wal_level, the role's privileges, the tables and
// their keys. Problems a retry cannot fix are permanent errors.
func (s *Source) preflight(ctx context.Context) error {
	var walLevel string
	if err := s.conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	if walLevel != "logical" {
		return cdc.Permanent(fmt.Errorf("PostgreSQL wal_level is %q: logical replication needs wal_level = logical "+
			"(set it in postgresql.conf or with ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)", walLevel))
	}
	var role string
	var canReplicate bool
	if err := s.conn.QueryRow(ctx,
		"SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&role, &canReplicate); err != nil {
		return fmt.Errorf("read role privileges: %w", err)
	}
	if !canReplicate {
		return cdc.Permanent(fmt.Errorf("role %q may not use replication: run ALTER ROLE %s WITH REPLICATION (as a superuser)",
			role, pgx.Identifier{role}.Sanitize()))
	}
	var problems []error
	for _, t := range s.cfg.Tables {
		m, err := s.loadTable(ctx, t)
		if err != nil {
			var pe *cdc.PermanentError
			if errors.As(err, &pe) {
				problems = append(problems, pe.Err)
				continue
			}
			return err
		}
		s.tables[t] = m
	}
	if len(problems) > 0 {
		return cdc.Permanent(errors.Join(problems...))
	}
	return nil
}

// loadTable reads a table's oid, key and NOT NULL columns, and checks that
// the role may read it.
func (s *Source) loadTable(ctx context.Context, t cdc.TableID) (*tableMeta, error) {
	m := &tableMeta{id: t, notNull: map[string]bool{}}
	var oid *uint32
	var canSelect bool
	var replident string
	err := s.conn.QueryRow(ctx, `SELECT c.oid, has_table_privilege(c.oid, 'SELECT'), c.relkind = 'p', c.relreplident::text
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, t.Schema, t.Name).Scan(&oid, &canSelect, &m.partitioned, &replident)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, cdc.Permanent(fmt.Errorf("table %s does not exist in database %s", t, s.db))
	}
	if err != nil {
		return nil, fmt.Errorf("look up table %s: %w", t, err)
	}
	m.oid = *oid
	if replident == "n" {
		return nil, cdc.Permanent(fmt.Errorf("table %s has REPLICA IDENTITY NOTHING: publishing it would make the application's "+
			"UPDATE and DELETE on it fail. Set REPLICA IDENTITY DEFAULT (or USING INDEX)", t))
	}
	if !canSelect {
		return nil, cdc.Permanent(fmt.Errorf("table %s: the role may not SELECT from it (GRANT SELECT ON %s TO ...)", t, quoteTable(t)))
	}
	rows, err := s.conn.Query(ctx, `SELECT a.attname
		FROM (SELECT indexrelid, indkey FROM pg_index
		      WHERE indrelid = $1 AND (indisreplident OR indisprimary)
		      ORDER BY indisreplident DESC, indisprimary DESC LIMIT 1) i
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = $1 AND a.attnum = k.attnum
		ORDER BY k.ord`, m.oid)
	if err != nil {
		return nil, fmt.Errorf("read key of %s: %w", t, err)
	}
	m.key, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read key of %s: %w", t, err)
	}
	if len(m.key) == 0 {
		return nil, cdc.Permanent(fmt.Errorf("table %s has no primary key and no replica identity index: Sluice keys every "+
			"Kafka record by it. Add a primary key, or ALTER TABLE %s REPLICA IDENTITY USING INDEX <a unique index on NOT NULL columns>",
			t, quoteTable(t)))
	}
	rows, err = s.conn.Query(ctx, `SELECT attname FROM pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attnotnull`, m.oid)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t, err)
	}
	for _, n := range names {
		m.notNull[n] = true
	}
	return m, nil
}

// ensurePublication creates the publication for the captured tables, or
// brings an existing one to exactly that table list.
func (s *Source) ensurePublication(ctx context.Context) error {
	want := make([]string, 0, len(s.cfg.Tables))
	for _, t := range s.cfg.Tables {
		want = append(want, quoteTable(t))
	}
	slices.Sort(want)
	list := strings.Join(want, ", ")
	pub := pgx.Identifier{s.cfg.Publication}.Sanitize()
	var viaRoot bool
	err := s.conn.QueryRow(ctx, "SELECT pubviaroot FROM pg_publication WHERE pubname = $1", s.cfg.Publication).Scan(&viaRoot)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("look up publication %s: %w", s.cfg.Publication, err)
	}
	if !exists {
		// Partitioned tables publish their changes under the root's name.
		if _, err := s.conn.Exec(ctx, "CREATE PUBLICATION "+pub+" FOR TABLE "+list+" WITH (publish_via_partition_root = true)"); err != nil {
			return permanentIfPrivilege(fmt.Errorf("create publication %s (needs ownership of the tables or superuser): %w", s.cfg.Publication, err))
		}
		s.log.Info("created publication", "publication", s.cfg.Publication, "tables", len(want))
		return nil
	}
	rows, err := s.conn.Query(ctx, "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1", s.cfg.Publication)
	if err != nil {
		return fmt.Errorf("read publication %s: %w", s.cfg.Publication, err)
	}
	have, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var t cdc.TableID
		err := r.Scan(&t.Schema, &t.Name)
		return quoteTable(t), err
	})
	if err != nil {
		return fmt.Errorf("read publication %s: %w", s.cfg.Publication, err)
	}
	slices.Sort(have)
	if !viaRoot {
		if _, err := s.conn.Exec(ctx, "ALTER PUBLICATION "+pub+" SET (publish_via_partition_root = true)"); err != nil {
			return permanentIfPrivilege(fmt.Errorf("update publication %s: %w", s.cfg.Publication, err))
		}
	}
	if slices.Equal(have, want) {
		return nil
	}
	if _, err := s.conn.Exec(ctx, "ALTER PUBLICATION "+pub+" SET TABLE "+list); err != nil {
		return permanentIfPrivilege(fmt.Errorf("update publication %s: %w", s.cfg.Publication, err))
	}
	s.log.Info("updated publication tables", "publication", s.cfg.Publication, "tables", len(want))
	return nil
}

type slotState struct {
	name      string
	exists    bool
	confirmed pglogrepl.LSN
}

// slotInfo looks a slot up and checks it is ours to use.
func (s *Source) slotInfo(ctx context.Context, name string) (slotState, error) {
	st := slotState{name: name}
	var plugin, db string
	var confirmed *string
	var activePID *int32
	var walStatus *string
	err := s.conn.QueryRow(ctx, `SELECT plugin, database, confirmed_flush_lsn::text, active_pid, wal_status
		FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&plugin, &db, &confirmed, &activePID, &walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("look up replication slot %s: %w", name, err)
	}
	if plugin != "pgoutput" || db != s.db {
		return st, cdc.Permanent(fmt.Errorf("replication slot %q exists but is not a pgoutput slot of database %s (plugin %s, database %s): "+
			"choose another slot name or drop it", name, s.db, plugin, db))
	}
	if activePID != nil {
		// Usually our own previous run, killed a moment ago: the server ends
		// that walsender soon, and the runtime retries.
		return st, fmt.Errorf("replication slot %q is in use by server process %d", name, *activePID)
	}
	if walStatus != nil && *walStatus == "lost" {
		// Invalidated (max_slot_wal_keep_size): it can never stream again.
		s.log.Error("replication slot was invalidated by the server (max_slot_wal_keep_size): the changes it lost are gone; dropping it",
			"slot", name)
		if err := s.dropSlot(ctx, name); err != nil {
			return st, err
		}
		return st, nil
	}
	st.exists = true
	if confirmed != nil {
		if st.confirmed, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return st, fmt.Errorf("slot %s confirmed_flush_lsn %q: %w", name, *confirmed, err)
		}
	}
	return st, nil
}

// createSlot creates a slot on the replication connection. With
// EXPORT_SNAPSHOT the snapshot name is kept for beginSnapshot; it stays
// valid until the next command on that connection.
func (s *Source) createSlot(ctx context.Context, name, action string) (pglogrepl.LSN, error) {
	res, err := pglogrepl.CreateReplicationSlot(ctx, s.repl, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{SnapshotAction: action})
	if err != nil {
		return 0, permanentIfPrivilege(fmt.Errorf("create replication slot %s: %w", name, err))
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, fmt.Errorf("slot %s consistent point %q: %w", name, res.ConsistentPoint, err)
	}
	s.log.Info("created replication slot", "slot", name, "consistent_point", lsn)
	if action == "EXPORT_SNAPSHOT" {
		s.snap = &snapshot{name: res.SnapshotName, startLSN: lsn}
	}
	return lsn, nil
}

// dropSlot drops a slot of ours that is not streaming, waiting (bounded)
// for a walsender that is still letting go of it.
func (s *Source) dropSlot(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := s.conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", name)
		var pe *pgconn.PgError
		if err == nil {
			s.log.Info("dropped replication slot", "slot", name)
			return nil
		}
		if !errors.As(err, &pe) || pe.Code != "55006" || ctx.Err() != nil { // 55006: slot is active
			return fmt.Errorf("drop replication slot %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// altSlotName is the second name a source's slot alternates with: a
// snapshot taken again creates its slot under the other name while the
// old slot still holds the changes to replay (see Open).
func altSlotName(slot string) string {
	sum := sha256.Sum256([]byte(slot + "\x00alternate"))
	suffix := "_" + hex.EncodeToString(sum[:])[:12]
	if len(slot) > 63-len(suffix) {
		slot = slot[:63-len(suffix)]
	}
	return slot + suffix
}

// permanentIfPrivilege marks privilege errors as permanent.
func permanentIfPrivilege(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42501" || pe.Code == "55000") {
		return cdc.Permanent(err)
	}
	return err
}

func quoteTable(t cdc.TableID) string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }
