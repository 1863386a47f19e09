package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// bareStats is what a bare reader saw.
type bareStats struct {
	Changes  int64         // insert, update and delete messages
	WALBytes int64         // pgoutput bytes received (XLogData payloads)
	Elapsed  time.Duration // from connecting until the end
	CPU      time.Duration // CPU time of this whole process meanwhile

	inTx    bool          // between a Begin and its Commit
	done    pglogrepl.LSN // end of the last transaction received, or the server's WAL end when idle
	lastRow []string      // keeps the decoded values reachable, so decoding is not optimised away
}

// sessionParams are the replication session settings Sluice's source uses,
// so the server's output functions do the same work for both readers.
var sessionParams = map[string]string{
	"TimeZone": "UTC", "DateStyle": "ISO, MDY", "IntervalStyle": "postgres",
	"extra_float_digits": "3", "bytea_output": "hex", "application_name": "sluice-bench-bare",
}

// readBare is the ceiling Sluice is compared with: the least work a
// pgoutput consumer can do. It streams slot with publication pub from the
// slot's confirmed position, parses every message, decodes the text of each
// changed row into strings, confirms what it received every second (as
// Sluice does, the server's WAL end while idle, so a quiet slot advances), and
// stops after want changes (want > 0) or, with want == 0, when ctx ends (a
// nil error then).
func readBare(ctx context.Context, dsn, slot, pub string, want int64) (st bareStats, err error) {
	t0, cpu0 := time.Now(), selfCPU()
	defer func() { st.Elapsed, st.CPU = time.Since(t0), selfCPU()-cpu0 }()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return st, fmt.Errorf("bare reader: %w", err)
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return st, fmt.Errorf("bare reader: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + pub + "'"}})
	if err != nil {
		return st, fmt.Errorf("bare reader: start replication on %s: %w", slot, err)
	}
	err = streamBare(ctx, conn, &st, want)
	if want == 0 && ctx.Err() != nil {
		return st, nil
	}
	return st, err
}

// streamBare receives until want changes were seen or ctx ends.
func streamBare(ctx context.Context, conn *pgconn.PgConn, st *bareStats, want int64) error {
	lastStatus := time.Now()
	for want == 0 || st.Changes < want {
		if time.Since(lastStatus) >= time.Second {
			if err := sendStatus(ctx, conn, st.done); err != nil {
				return err
			}
			lastStatus = time.Now()
		}
		// A bounded wait, so an idle stream still confirms every second.
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil && ctx.Err() == nil && pgconn.Timeout(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("bare reader: receive: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("bare reader: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return fmt.Errorf("bare reader: keepalive: %w", err)
				}
				if !st.inTx {
					st.done = max(st.done, ka.ServerWALEnd)
				}
				if ka.ReplyRequested {
					if err := sendStatus(ctx, conn, st.done); err != nil {
						return err
					}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return fmt.Errorf("bare reader: xlog data: %w", err)
				}
				st.WALBytes += int64(len(xld.WALData))
				if err := st.decode(xld.WALData); err != nil {
					return err
				}
			}
		}
	}
	return sendStatus(ctx, conn, st.done)
}

// decode parses one pgoutput message and, for a change, turns every text
// column of the new (or old) row into a string.
func (st *bareStats) decode(data []byte) error {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("bare reader: parse: %w", err)
	}
	var tuple *pglogrepl.TupleData
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		st.inTx = true
		return nil
	case *pglogrepl.CommitMessage:
		st.inTx, st.done = false, max(st.done, m.TransactionEndLSN)
		return nil
	case *pglogrepl.InsertMessage:
		tuple = m.Tuple
	case *pglogrepl.UpdateMessage:
		tuple = m.NewTuple
	case *pglogrepl.DeleteMessage:
		tuple = m.OldTuple
	default:
		return nil
	}
	st.Changes++
	if tuple == nil {
		return errors.New("bare reader: change without a tuple")
	}
	row := make([]string, len(tuple.Columns))
	for i, c := range tuple.Columns {
		if c.DataType == pglogrepl.TupleDataTypeText {
			row[i] = string(c.Data)
		}
	}
	st.lastRow = row
	return nil
}

// sendStatus confirms lsn as written, flushed and applied.
func sendStatus(ctx context.Context, conn *pgconn.PgConn, lsn pglogrepl.LSN) error {
	err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn, WALFlushPosition: lsn, WALApplyPosition: lsn, ClientTime: time.Now()})
	if err != nil {
		return fmt.Errorf("bare reader: standby status: %w", err)
	}
	return nil
}

// selfCPU is the user+system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
