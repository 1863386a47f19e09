package cdc

import "context"

// Batch is what one Source.Read returns.
type Batch struct {
	// Records are changes in commit order; a batch may hold part of a
	// transaction, a whole one, or several.
	Records []Record
	// Checkpoint, when not nil, is a position the source reached with this
	// batch: once every record of this batch and of all earlier batches is
	// durable in Kafka, the runtime stores Checkpoint and passes it to Ack.
	// A restarted source opened at Checkpoint must not emit any change that
	// was at or before it. A batch may carry a Checkpoint and no records
	// (for example when an idle source's stream moved on).
	Checkpoint Position
}

// Source captures the changes of one database. The capture runtime drives it:
//
//   - Open is called once, with the last checkpoint stored for this source, or
//     nil on the very first run (the source then snapshots as configured).
//   - Read is called in a loop from one goroutine. It blocks until it has
//     something to return or ctx is done, then returns ctx.Err().
//   - Ack may be called concurrently with Read, from another goroutine, with
//     checkpoints in the order Read returned them (never skipping backwards).
//     It tells the source that everything up to the checkpoint is durable in
//     Kafka and stored, so the source may release it upstream (for example
//     confirm the LSN to PostgreSQL). Ack must not block on Read.
//   - Close is called once, after Read and Ack have returned for the last
//     time, and also after a failed Open; it releases whatever connections
//     exist. It does not drop replication slots.
//
// Errors returned by Open or Read stop this run of the source; the runtime
// restarts it from the stored checkpoint with backoff. An error that a retry
// cannot fix should wrap ErrPermanent so the status shows it plainly.
type Source interface {
	Open(ctx context.Context, from Position) error
	Read(ctx context.Context) (Batch, error)
	Ack(ctx context.Context, upTo Position) error
	Close(ctx context.Context) error
}

// PermanentError marks an error that retrying will not fix (wrong
// wal_level, missing privileges, a table without a key). The runtime still
// retries, slowly, because an operator may fix the cause underneath it.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}
