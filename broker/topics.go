package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// MaxMessageBytes is the largest record batch Sluice produces and the
// max.message.bytes of the topics it creates: rows with large text or
// bytea values, in JSON with the schema, exceed Kafka's 1 MiB default.
const MaxMessageBytes = 4 << 20

// Topics creates topics on demand, once each per process.
type Topics struct {
	adm               *kadm.Client
	partitions        int32
	replicationFactor int16

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
		"max.message.bytes": kadm.StringPtr(fmt.Sprint(MaxMessageBytes)),
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
