package apply

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// recordingSink keeps what the runner writes, in memory: the runner's
// scheduling is under test here, not a destination (the PostgreSQL sink has
// its own tests against a real server).
type recordingSink struct {
	mu      sync.Mutex
	stored  cdc.Offsets
	applied map[cdc.TopicPartition][]int64 // sequence numbers, in the order written
}

func (s *recordingSink) Open(context.Context) (cdc.Offsets, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stored == nil {
		s.stored, s.applied = cdc.Offsets{}, map[cdc.TopicPartition][]int64{}
	}
	out := cdc.Offsets{}
	for tp, n := range s.stored {
		out[tp] = n
	}
	return out, nil
}

func (s *recordingSink) Write(_ context.Context, b cdc.Applied) error {
	time.Sleep(time.Millisecond) // a destination takes time: polls overlap writes
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range b.Records {
		tp := cdc.TopicPartition{Topic: r.Table.Name, Partition: int32(r.Seq >> 32)}
		s.applied[tp] = append(s.applied[tp], r.Seq&(1<<32-1))
	}
	for tp, n := range b.Offsets {
		s.stored[tp] = n
	}
	return nil
}

func (s *recordingSink) Close(context.Context) error { return nil }

// seqDecoder decodes the test's records: the value is the partition and a
// sequence number.
type seqDecoder struct{}

func (seqDecoder) Decode(_, v []byte) (cdc.Record, error) {
	if len(v) != 12 {
		return cdc.Record{}, fmt.Errorf("want 12 bytes, got %d", len(v))
	}
	p, n := binary.BigEndian.Uint32(v), binary.BigEndian.Uint64(v[4:])
	return cdc.Record{Op: cdc.OpCreate, Table: cdc.TableID{Name: "t"}, Seq: int64(p)<<32 | int64(n)}, nil
}

type passStages struct{}

func (passStages) Apply(_ context.Context, r cdc.Record) ([]cdc.Record, error) {
	return []cdc.Record{r}, nil
}

// TestRunnerAppliesEverythingInOrder runs a pipeline over 4 partitions on
// an in-process broker with batches large enough to be transformed in
// parallel and writes that overlap polls: every record is applied once, in
// partition order, and the stored offsets reach the end. Run with -race,
// it also checks what the poll and write goroutines share.
func TestRunnerAppliesEverythingInOrder(t *testing.T) {
	const partitions, perPartition = 4, 5000
	addrs := seedSeqTopic(t, partitions, perPartition)
	sink := &recordingSink{}
	runUntilApplied(t, addrs, sink, 2000, partitions*perPartition)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for p := range int32(partitions) {
		tp := cdc.TopicPartition{Topic: "t", Partition: p}
		if got := sink.stored[tp]; got != perPartition {
			t.Errorf("partition %d: stored offset %d, want %d", p, got, perPartition)
		}
		seqs := sink.applied[cdc.TopicPartition{Topic: "t", Partition: p}]
		if len(seqs) != perPartition {
			t.Errorf("partition %d: %d records applied, want %d", p, len(seqs), perPartition)
			continue
		}
		for i, n := range seqs {
			if n != int64(i) {
				t.Errorf("partition %d: record %d applied at position %d: order broken or doubled", p, n, i)
				break
			}
		}
	}
}

// preparingSink is a recordingSink that can prepare (see preparer) and
// counts the writes of batches it was given to prepare.
type preparingSink struct {
	recordingSink
	mu       sync.Mutex
	prepared map[*cdc.Record]int // first record -> length
	hits     int
}

func (s *preparingSink) Prepare(recs []cdc.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(recs) > 0 {
		s.prepared[&recs[0]] = len(recs)
	}
}

func (s *preparingSink) Write(ctx context.Context, b cdc.Applied) error {
	time.Sleep(5 * time.Millisecond) // slower than polling: the hand-off fills
	s.mu.Lock()
	if len(b.Records) > 0 {
		if n, ok := s.prepared[&b.Records[0]]; ok && n == len(b.Records) {
			s.hits++
		}
	}
	s.mu.Unlock()
	return s.recordingSink.Write(ctx, b)
}

// TestRunnerPreparesWhileWriting: with a writer slower than polling, the
// runner hands batches that wait for the hand-off to the sink's Prepare,
// and then writes that very slice.
func TestRunnerPreparesWhileWriting(t *testing.T) {
	const n = 20000
	addrs := seedSeqTopic(t, 1, n)
	sink := &preparingSink{prepared: map[*cdc.Record]int{}}
	runUntilApplied(t, addrs, sink, 500, n)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.hits == 0 || len(sink.prepared) == 0 {
		t.Fatalf("%d batches prepared, %d of them written as prepared; want some", len(sink.prepared), sink.hits)
	}
	if got := len(sink.recordingSink.applied[cdc.TopicPartition{Topic: "t"}]); got != n {
		t.Errorf("%d records applied, want %d", got, n)
	}
}

// seedSeqTopic starts an in-process broker with topic "t" of the given
// partitions, each holding perPartition seqDecoder records (partition and
// sequence number), and returns its addresses. The records are produced
// with zstd, as Sources produce: the runner decompresses them into pooled
// memory that it recycles once a batch is applied.
func seedSeqTopic(t *testing.T, partitions, perPartition int) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range partitions {
		for n := range perPartition {
			v := make([]byte, 12)
			binary.BigEndian.PutUint32(v, uint32(p))
			binary.BigEndian.PutUint64(v[4:], uint64(n))
			recs = append(recs, &kgo.Record{Topic: "t", Partition: int32(p), Value: v})
		}
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return c.ListenAddrs()
}

// runUntilApplied runs a pipeline from topic "t" at addrs into sink until
// it has applied want records, then stops it.
func runUntilApplied(t *testing.T, addrs []string, sink cdc.Sink, batchRows, want int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := &Runner{Topics: []string{"t"}, ClientOpts: []kgo.Opt{kgo.SeedBrokers(addrs...)},
		Decoder: seqDecoder{}, Stages: passStages{}, Sink: sink, BatchRows: batchRows,
		Logger: slog.New(slog.DiscardHandler), Stats: &Stats{}}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for r.Stats.Applied.Load() < int64(want) {
		if time.Now().After(deadline) {
			t.Fatalf("applied %d of %d records in 30 s", r.Stats.Applied.Load(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
