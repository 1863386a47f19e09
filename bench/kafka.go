package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// topicOf is the Kafka topic of a public table in the bench source.
func topicOf(table string) string {
	return spec.TopicName(instance, sourceName, cdc.TableID{Schema: "public", Name: table})
}

// endOffsets returns the sum of the end offsets of the topics' partitions:
// the number of records on them. A topic that does not exist yet counts 0.
func endOffsets(ctx context.Context, adm *kadm.Client, topics ...string) (int64, error) {
	offs, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, fmt.Errorf("list end offsets: %w", err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n, nil
}

// waitRecords polls the topics' end offsets every 50ms until they reach
// want, returning when the first record appeared and when want was reached.
// alive is checked on every poll.
func waitRecords(ctx context.Context, adm *kadm.Client, want int64, limit time.Duration, alive func() error,
	topics ...string) (first, done time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		n, err := endOffsets(ctx, adm, topics...)
		now := time.Now()
		if err == nil && n > 0 && first.IsZero() {
			first = now
		}
		if err == nil && n >= want {
			return first, now, nil
		}
		if err := alive(); err != nil {
			return first, now, err
		}
		select {
		case <-ctx.Done():
			return first, now, fmt.Errorf("waiting for %d records on %v (have %d): %w", want, topics, n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// topicBytes consumes n records of topic from the start and sums the sizes
// of their keys and values.
func topicBytes(ctx context.Context, addr, topic string, n int64) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return 0, fmt.Errorf("consumer: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var seen, bytes int64
	for seen < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("consume %s (%d of %d records): %w", topic, seen, n, err)
		}
		if err := fs.Err(); err != nil {
			return 0, fmt.Errorf("consume %s: %w", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			bytes += int64(len(r.Key) + len(r.Value))
		})
	}
	return bytes, nil
}

// newAdmin connects an admin client to the broker at addr. Its metadata is
// cached for 50ms only: with the default (5s), a topic polled before Sluice
// created it would stay "unknown" for up to 5s, which would count as
// Sluice's startup.
func newAdmin(addr string) (*kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("kafka admin client: %w", err)
	}
	return kadm.NewClient(cl), nil
}
