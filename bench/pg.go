package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// benchTable is the five-column table of the throughput and latency runs.
const benchTable = `CREATE TABLE bench (id bigint PRIMARY KEY, a int, b text, c numeric(12,2), d timestamptz)`

// insertRange inserts rows with ids first..last in one statement (one
// transaction in autocommit). b is 32 characters, c has two decimals.
const insertRange = `INSERT INTO bench (id, a, b, c, d)
	SELECT g, (g % 100000)::int, md5(g::text), (g % 1000000) / 100.0, now() - (g % 86400) * interval '1 second'
	FROM generate_series($1::bigint, $2::bigint) g`

// slotState is a replication slot as pg_replication_slots shows it.
type slotState struct {
	exists, active bool
	confirmed      string // confirmed_flush_lsn, "" if null
}

// readSlot looks a slot up.
func readSlot(ctx context.Context, conn *pgx.Conn, slot string) (slotState, error) {
	st := slotState{exists: true}
	var confirmed *string
	err := conn.QueryRow(ctx, `SELECT active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`,
		slot).Scan(&st.active, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return slotState{}, nil
	}
	if err != nil {
		return st, fmt.Errorf("read slot %s: %w", slot, err)
	}
	if confirmed != nil {
		st.confirmed = *confirmed
	}
	return st, nil
}

// waitSlot polls until the slot exists and is (active) or is not (!active)
// in use by a walsender. alive, when not nil, is checked on every poll so a
// dead subprocess ends the wait early.
func waitSlot(ctx context.Context, dsn, slot string, active bool, alive func() error) error {
	return poll(ctx, dsn, 60*time.Second, func(conn *pgx.Conn) (bool, error) {
		if alive != nil {
			if err := alive(); err != nil {
				return false, err
			}
		}
		st, err := readSlot(ctx, conn, slot)
		return st.exists && st.active == active, err
	}, fmt.Sprintf("slot %s active=%v", slot, active))
}

// waitConfirmed polls until the slot has confirmed lsn, returning how long
// that took.
func waitConfirmed(ctx context.Context, dsn, slot, lsn string, limit time.Duration) (time.Duration, error) {
	t0 := time.Now()
	err := poll(ctx, dsn, limit, func(conn *pgx.Conn) (bool, error) {
		var done bool
		err := conn.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn >= $2::pg_lsn, false)
			FROM pg_replication_slots WHERE slot_name = $1`, slot, lsn).Scan(&done)
		return done, err
	}, fmt.Sprintf("slot %s to confirm %s", slot, lsn))
	return time.Since(t0), err
}

// poll calls cond on one connection every 50ms until it returns true, fails,
// or limit passes.
func poll(ctx context.Context, dsn string, limit time.Duration, cond func(*pgx.Conn) (bool, error), what string) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		ok, err := cond(conn)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// queryString runs a one-value query on a connection of its own.
func queryString(ctx context.Context, dsn, sql string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		return "", fmt.Errorf("%s: %w", sql, err)
	}
	return s, nil
}

// createBareSlot creates the bare reader's pgoutput slot and its publication.
func (e *env) createBareSlot(ctx context.Context, db, slot string, tables []string) error {
	sql := fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput');
		CREATE PUBLICATION %s FOR TABLE %s`, slot, slot, strings.Join(tables, ", "))
	if err := e.pg.Exec(ctx, db, sql); err != nil {
		return fmt.Errorf("create bare slot %s: %w", slot, err)
	}
	return nil
}

// dropSlots drops replication slots so they stop holding WAL back.
func (e *env) dropSlots(ctx context.Context, db string, slots ...string) error {
	var errs []error
	for _, s := range slots {
		sql := fmt.Sprintf(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '%s'`, s)
		if err := e.pg.Exec(ctx, db, sql); err != nil {
			errs = append(errs, fmt.Errorf("drop slot %s: %w", s, err))
		}
	}
	return errors.Join(errs...)
}

// load inserts ids 1..rows in transactions of txRows rows.
func load(ctx context.Context, dsn string, rows, txRows int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for first := 1; first <= rows; first += txRows {
		last := min(first+txRows-1, rows)
		if _, err := conn.Exec(ctx, insertRange, first, last); err != nil {
			return fmt.Errorf("insert rows %d-%d: %w", first, last, err)
		}
	}
	return nil
}
