package cdc

import "context"

// TopicPartition names one partition of a Kafka topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Offsets maps Kafka partitions to the next offset to consume from each:
// everything below it has been applied.
type Offsets map[TopicPartition]int64

// Applied is what a Sink writes in one destination transaction.
type Applied struct {
	// Records are destination changes, in the order they were consumed:
	// Table is the destination table, Key its key columns, After the row
	// to write (absent columns are left as they are in the destination),
	// Schema the destination columns with their kinds. A batch may hold
	// several changes of the same key; the last one wins.
	Records []Record
	// Offsets are the next offsets of the partitions the records came
	// from. The sink stores them in the same transaction as the records,
	// replacing the stored offsets of those partitions only. A batch may
	// carry offsets and no records (every record was filtered out).
	Offsets Offsets
}

// Sink applies changes to a destination. The pipeline runtime drives it
// from one goroutine:
//
//   - Open connects, prepares what the sink keeps in the destination, and
//     returns the offsets its last committed Write stored (empty the first
//     time). The runtime consumes from exactly there, which makes every
//     change apply once even in append-only modes.
//   - Write applies one batch atomically: records and offsets commit
//     together or not at all. On error, nothing of the batch is visible.
//   - Close releases connections; it is called once, also after a failed
//     Open.
//
// A Write error that retrying cannot fix (a constraint violation, a type
// the destination rejects) wraps PermanentError; any other error is
// retried with backoff, with the same batch.
type Sink interface {
	Open(ctx context.Context) (Offsets, error)
	Write(ctx context.Context, b Applied) error
	Close(ctx context.Context) error
}
