package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Store keeps small key -> value state (source checkpoints, later specs and
// statuses) in one compacted single-partition control topic. The last value
// written for a key wins; a nil value deletes the key.
type Store struct {
	cl    *kgo.Client
	topic string
}

// NewStore returns a store on topic, creating the topic (compacted, one
// partition) if needed.
func NewStore(ctx context.Context, cl *kgo.Client, topics *Topics, topic string) (*Store, error) {
	if err := topics.Ensure(ctx, topic, TopicOptions{Partitions: 1}); err != nil {
		return nil, err
	}
	return &Store{cl: cl, topic: topic}, nil
}

// Save writes key = value and returns once Kafka acknowledged it, or when
// ctx ends (kgo keeps retrying a record it could not send yet, for instance
// while the broker is down, whatever its context says; a value written
// late is still a correct value).
func (s *Store) Save(ctx context.Context, key string, value []byte) error {
	done := make(chan error, 1)
	s.cl.Produce(ctx, &kgo.Record{Topic: s.topic, Key: []byte(key), Value: value}, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("store %s: save %s: %w", s.topic, key, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("store %s: save %s: %w", s.topic, key, ctx.Err())
	}
}

// Load reads the whole topic and returns the latest value of every key.
func (s *Store) Load(ctx context.Context) (map[string][]byte, error) {
	out := map[string][]byte{}
	adm := kadm.NewClient(s.cl)
	ends, err := adm.ListEndOffsets(ctx, s.topic)
	if err != nil {
		return nil, fmt.Errorf("store %s: end offsets: %w", s.topic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("store %s: end offsets: %w", s.topic, err)
	}
	want := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			parts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return out, nil
	}
	opts := append(clientOptsOf(s.cl), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: parts}))
	rd, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("store %s: reader: %w", s.topic, err)
	}
	defer rd.Close()
	for len(want) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("store %s: load: %w", s.topic, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = errors.Join(ferr, fmt.Errorf("%s[%d]: %w", t, p, err)) })
		if ferr != nil {
			return nil, fmt.Errorf("store %s: load: %w", s.topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Value == nil {
				delete(out, string(r.Key))
			} else {
				out[string(r.Key)] = r.Value
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out, nil
}

// Get returns the latest value of key (nil if none).
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	all, err := s.Load(ctx)
	if err != nil {
		return nil, err
	}
	return all[key], nil
}

// clientOptsOf returns the connection options of an existing client
// (seed brokers, TLS, SASL), without its producer or consumer settings.
func clientOptsOf(cl *kgo.Client) []kgo.Opt {
	var opts []kgo.Opt
	for _, o := range cl.Opts() {
		if _, ok := o.(kgo.ProducerOpt); ok {
			continue
		}
		if _, ok := o.(kgo.ConsumerOpt); ok {
			continue
		}
		if _, ok := o.(kgo.GroupOpt); ok {
			continue
		}
		opts = append(opts, o)
	}
	return opts
}
