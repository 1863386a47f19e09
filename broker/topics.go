package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultMaxRecordBytes is the default largest record (and record batch)
// Sluice produces, and the max.message.bytes of the topics it creates:
// Kafka's own default. Rows with large values need more (Config.MaxRecordBytes),
// at a memory cost: batches grow to that size.
const DefaultMaxRecordBytes = 1 << 20

// embeddedMaxMessageBytes is the embedded broker's own limit; topics carry
// the one that applies.
const embeddedMaxMessageBytes = 64 << 20

// Topics creates topics on demand, once each per process.
type Topics struct {
	adm               *kadm.Client
	partitions        int32
	replicationFactor int16
	// MaxMessageBytes is the max.message.bytes of created topics
	// (default DefaultMaxRecordBytes).
	MaxMessageBytes int

	mu    sync.Mutex
	known map[string]bool
}

// NewTopics returns a topic creator using cl for admin requests. partitions
// and replicationFactor are the defaults for Ensure (-1: broker default).
func NewTopics(cl *kgo.Client, partitions int32, replicationFactor int16) *Topics {
	if partitions == 0 {
		partitions = 1
	}
	if replicationFactor == 0 {
		replicationFactor = -1
	}
	return &Topics{adm: kadm.NewClient(cl), partitions: partitions, replicationFactor: replicationFactor, known: map[string]bool{}}
}

// TopicOptions override the defaults for one topic.
type TopicOptions struct {
	Partitions        int32 // 0: the default
	ReplicationFactor int16 // 0: the default
	// Delete makes the topic delete-policy instead of compacted (dead
	// letters, for instance).
	Delete bool
}

// Ensure creates topic with cleanup.policy=compact (unless o.Delete) if it
// does not exist yet. An existing topic is left as it is.
func (t *Topics) Ensure(ctx context.Context, topic string, o TopicOptions) error {
	t.mu.Lock()
	known := t.known[topic]
	t.mu.Unlock()
	if known {
		return nil
	}
	parts, rf := t.partitions, t.replicationFactor
	if o.Partitions != 0 {
		parts = o.Partitions
	}
	if o.ReplicationFactor != 0 {
		rf = o.ReplicationFactor
	}
	policy := "compact"
	if o.Delete {
		policy = "delete"
	}
	configs := map[string]*string{
		"cleanup.policy":    kadm.StringPtr(policy),
		"max.message.bytes": kadm.StringPtr(fmt.Sprint(cmp.Or(t.MaxMessageBytes, DefaultMaxRecordBytes))),
	}
	_, err := t.adm.CreateTopic(ctx, parts, rf, configs, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	t.mu.Lock()
	t.known[topic] = true
	t.mu.Unlock()
	return nil
}
