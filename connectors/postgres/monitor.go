package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// estimateSnapshot reads the planner's row count of every table to
// snapshot and reports each table at zero rows. It runs before the
// snapshot transaction begins, so a failure there (it only costs the
// estimates) cannot abort the snapshot.
func (s *Source) estimateSnapshot(ctx context.Context) {
	if s.cfg.SnapshotProgress == nil {
		return
	}
	s.snap.estimates = make([]int64, len(s.snap.tables))
	for i, t := range s.snap.tables {
		// reltuples is -1 for a table never vacuumed or analyzed; a
		// partitioned table's rows are in its leaf partitions.
		err := s.conn.QueryRow(ctx, `SELECT CASE WHEN c.relkind = 'p' THEN
				(SELECT COALESCE(sum(GREATEST(p.reltuples, 0)), 0) FROM pg_partition_tree(c.oid) pt
				 JOIN pg_class p ON p.oid = pt.relid WHERE pt.isleaf)
				ELSE GREATEST(c.reltuples, 0) END::bigint
			FROM pg_class c WHERE c.oid = $1`, s.tables[t].oid).Scan(&s.snap.estimates[i])
		if err != nil {
			s.log.Debug("snapshot: no row estimate", "table", t.String(), "err", err)
		}
		s.cfg.SnapshotProgress(t, 0, s.snap.estimates[i])
	}
}

// reportSnapshot reports the rows read so far from the idx-th table.
func (s *Source) reportSnapshot(idx int, rows int64) {
	if s.cfg.SnapshotProgress == nil || idx >= len(s.snap.tables) {
		return
	}
	var est int64
	if idx < len(s.snap.estimates) {
		est = s.snap.estimates[idx]
	}
	s.cfg.SnapshotProgress(s.snap.tables[idx], rows, est)
}

// SlotStats is what the server holds back for a source's replication
// slots (the one in use and, while a snapshot is taken again, the
// previous one).
type SlotStats struct {
	// RetainedBytes is the WAL the server keeps for the slots: its
	// current WAL position minus the oldest restart_lsn.
	RetainedBytes int64
	// ConfirmedLagBytes is the server's current WAL position minus the
	// newest position Sluice confirmed (confirmed_flush_lsn).
	ConfirmedLagBytes int64
}

// WatchSlots reports the source's SlotStats every interval until ctx
// ends. It uses a connection of its own: the source's connections are busy
// with the snapshot and the stream, and the numbers matter most when
// capture is stuck. A failed query is tried again at the next interval,
// and logged as a warning once it failed three times in a row (before,
// the source itself usually reports the same cause); slots that do not
// exist (yet) count as zero.
func (s *Source) WatchSlots(ctx context.Context, interval time.Duration, report func(SlotStats)) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = conn.Close(cctx)
		}
	}()
	failures := 0
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st, err := s.slotStats(ctx, &conn)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			level := slog.LevelDebug
			if failures == 3 {
				level = slog.LevelWarn
			}
			s.log.Log(ctx, level, "cannot read the replication slots' WAL statistics; retrying", "err", err, "retry_in", interval)
		default:
			failures = 0
			report(st)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// slotStats queries the slots' statistics over *conn, connecting first when
// it is nil and dropping it after a failure.
func (s *Source) slotStats(ctx context.Context, conn **pgx.Conn) (SlotStats, error) {
	if *conn == nil {
		cc, err := pgx.ParseConfig(s.cfg.DSN)
		if err != nil {
			return SlotStats{}, cdc.Permanent(redactErr(err))
		}
		for k, v := range sessionParams {
			cc.RuntimeParams[k] = v
		}
		cc.RuntimeParams["application_name"] = "sluice-monitor"
		c, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			return SlotStats{}, redactErr(err)
		}
		*conn = c
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var st SlotStats
	err := (*conn).QueryRow(qctx, `SELECT
			COALESCE(pg_wal_lsn_diff(w.lsn, min(s.restart_lsn)), 0)::bigint,
			COALESCE(pg_wal_lsn_diff(w.lsn, max(s.confirmed_flush_lsn)), 0)::bigint
		FROM (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn) w
		LEFT JOIN pg_replication_slots s ON s.slot_name = ANY($1)
		GROUP BY w.lsn`, []string{s.cfg.Slot, altSlotName(s.cfg.Slot)}).Scan(&st.RetainedBytes, &st.ConfirmedLagBytes)
	if err != nil {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer ccancel()
		_ = (*conn).Close(cctx)
		*conn = nil
		return SlotStats{}, err
	}
	return st, nil
}
