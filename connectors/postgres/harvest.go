package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// harvest replays the deletes an old slot holds from its
// confirmed position up to the new snapshot's consistent point. Inserts and
// updates of that window need no replay: the new snapshot has their
// outcome. Deletes do, because a snapshot cannot say "this row is gone".
type harvest struct {
	slot        string
	from, until pglogrepl.LSN
	conn        *pgconn.PgConn
	st          streamState
	lastStatus  time.Time
}

// status tells the server we are alive; it confirms nothing new (the old
// slot keeps its position until it is dropped).
func (h *harvest) status(ctx context.Context, reply bool) error {
	h.lastStatus = time.Now()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, h.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: h.from, WALFlushPosition: h.from, WALApplyPosition: h.from, ReplyRequested: reply})
	if err != nil {
		return fmt.Errorf("replay deletes from slot %s: %w", h.slot, err)
	}
	return nil
}

// readHarvest returns the next deletes of the old slot; when the old slot
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
			return cdc.Batch{}, fmt.Errorf("replay deletes from slot %s: %w", h.slot, err)
		}
		h.st = streamState{relations: map[uint32]*relation{}}
	}
	var b cdc.Batch
	for {
		// Answer the server regularly even while data flows, or it ends the
		// connection after wal_sender_timeout.
		if time.Since(h.lastStatus) > 5*time.Second {
			if err := h.status(ctx, false); err != nil {
				return cdc.Batch{}, err
			}
		}
		m, err := receive(ctx, h.conn)
		if err != nil {
			if ctx.Err() != nil {
				return cdc.Batch{}, ctx.Err()
			}
			return cdc.Batch{}, fmt.Errorf("replay deletes from slot %s: %w", h.slot, err)
		}
		switch {
		case m.timeout:
			if len(b.Records) > 0 {
				return b, nil
			}
			// Ask for a keepalive: its WAL position tells when we are past
			// the consistent point on a quiet server.
			if err := h.status(ctx, true); err != nil {
				return cdc.Batch{}, err
			}
		case m.keepalive != nil:
			if m.keepalive.ServerWALEnd >= h.until && !h.st.inTx {
				return b, s.endHarvest(ctx)
			}
			if m.keepalive.ReplyRequested {
				if err := h.status(ctx, false); err != nil {
					return cdc.Batch{}, err
				}
			}
		case m.xld != nil:
			var tx cdc.Batch
			if _, err := s.handle(ctx, &h.st, *m.xld, &tx); err != nil {
				return cdc.Batch{}, err
			}
			if h.st.inTx && h.st.tx.final >= h.until {
				// This transaction committed after the consistent point:
				// the new snapshot and slot cover it.
				return b, s.endHarvest(ctx)
			}
			for _, r := range tx.Records {
				if r.Op == cdc.OpDelete {
					b.Records = append(b.Records, r)
				}
			}
			if len(b.Records) >= maxBatch {
				return b, nil
			}
		}
	}
}

func (s *Source) endHarvest(ctx context.Context) error {
	h := s.harvest
	s.harvest = nil
	s.log.Info("replayed deletes from the previous slot", "old_slot", h.slot)
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
