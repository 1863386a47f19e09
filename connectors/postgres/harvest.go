package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// harvest streams an old slot from a position up to a new snapshot's
// consistent point, on a replication connection of its own.
//
// After a snapshot was cut short (all false) only the deletes of that
// window are replayed: the new snapshot has the outcome of inserts and
// updates, but cannot say "this row is gone". For a resnapshot (all true)
// the old slot is the one in use and only some tables are read again, so
// every change of the window is returned, with checkpoints of the old
// slot: a crash resumes there, and the acknowledged ones are confirmed to
// it so its WAL is released meanwhile.
type harvest struct {
	slot        string
	from, until pglogrepl.LSN
	all         bool
	conn        *pgconn.PgConn
	st          streamState
	lastStatus  time.Time
}

// status tells the server we are alive. Replaying deletes confirms
// nothing new (the old slot keeps its position until it is dropped); a
// resnapshot's harvest confirms what is acknowledged.
func (s *Source) harvestStatus(ctx context.Context, reply bool) error {
	h := s.harvest
	h.lastStatus = time.Now()
	pos := h.from
	if h.all {
		pos = max(pos, pglogrepl.LSN(s.acked.Load()))
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, h.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos, ReplyRequested: reply})
	if err != nil {
		return fmt.Errorf("replay slot %s: %w", h.slot, err)
	}
	return nil
}

// readHarvest returns the next changes of the old slot; when the old slot
// has reached the new consistent point it ends the harvest, and the next
// Read starts the snapshot.
func (s *Source) readHarvest(ctx context.Context) (cdc.Batch, error) {
	h := s.harvest
	if h.conn == nil {
		conn, err := s.replConn(ctx)
		if err != nil {
			return cdc.Batch{}, err
		}
		h.conn = conn
		err = pglogrepl.StartReplication(ctx, conn, h.slot, h.from, pglogrepl.StartReplicationOptions{
			PluginArgs: []string{"proto_version '1'", "publication_names '" + s.cfg.Publication + "'"},
		})
		if err != nil {
			return cdc.Batch{}, classifyStreamErr(fmt.Errorf("replay slot %s from %s: %w", h.slot, h.from, err), h.slot)
		}
		h.st = streamState{slot: h.slot, relations: map[uint32]*relation{}, lastStatus: time.Now()}
		if h.all {
			// As when streaming: what the stored position covers is on Kafka.
			h.st.resume, h.st.lastCp = h.from, h.from
		}
	}
	var b cdc.Batch
	for {
		// Answer the server regularly even while data flows, or it ends the
		// connection after wal_sender_timeout.
		if time.Since(h.lastStatus) > 5*time.Second {
			if err := s.harvestStatus(ctx, false); err != nil {
				return cdc.Batch{}, err
			}
		}
		m, err := receive(ctx, h.conn)
		if err != nil {
			if ctx.Err() != nil {
				return cdc.Batch{}, ctx.Err()
			}
			return cdc.Batch{}, fmt.Errorf("replay slot %s: %w", h.slot, err)
		}
		switch {
		case m.timeout:
			if len(b.Records) > 0 {
				return b, nil
			}
			// Ask for a keepalive: its WAL position tells when we are past
			// the consistent point on a quiet server.
			if err := s.harvestStatus(ctx, true); err != nil {
				return cdc.Batch{}, err
			}
		case m.keepalive != nil:
			// The walsender sends a transaction when it decodes its commit,
			// in commit order: once it is past the consistent point outside
			// a transaction, every transaction that committed before it has
			// been received.
			if m.keepalive.ServerWALEnd >= h.until && !h.st.inTx {
				return b, s.endHarvest(ctx)
			}
			if m.keepalive.ReplyRequested {
				if err := s.harvestStatus(ctx, false); err != nil {
					return cdc.Batch{}, err
				}
			}
		case m.xld != nil:
			var tx cdc.Batch
			done, err := s.handle(ctx, &h.st, *m.xld, &tx)
			if err != nil {
				return cdc.Batch{}, err
			}
			if h.st.inTx && h.st.tx.final >= h.until {
				// This transaction committed after the consistent point:
				// the new snapshot and slot cover it.
				return b, s.endHarvest(ctx)
			}
			for _, r := range tx.Records {
				if h.all || r.Op == cdc.OpDelete {
					b.Records = append(b.Records, r)
				}
			}
			if h.all && tx.Checkpoint != nil {
				b.Checkpoint = tx.Checkpoint
			}
			if (h.all && done) || len(b.Records) >= maxBatch {
				return b, nil
			}
		}
	}
}

func (s *Source) endHarvest(ctx context.Context) error {
	h := s.harvest
	s.harvest = nil
	if h.all {
		s.log.Info("resnapshot: the previous slot reached the new consistent point; reading the tables", "old_slot", h.slot, "until", h.until)
	} else {
		s.log.Info("replayed deletes from the previous slot", "old_slot", h.slot)
	}
	if err := h.conn.Close(ctx); err != nil {
		return fmt.Errorf("close replay of slot %s: %w", h.slot, err)
	}
	return nil
}

// maybeDropOldSlot drops the previous slot once a position of the new one is
// durable (everything the old slot was kept for is then on Kafka).
func (s *Source) maybeDropOldSlot(ctx context.Context) error {
	if s.dropOld == "" || !s.durable.Load() {
		return nil
	}
	if err := s.dropSlot(ctx, s.dropOld); err != nil {
		return err
	}
	s.dropOld = ""
	return nil
}
