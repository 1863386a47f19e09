package broker

import (
	"cmp"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func client(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestEmbeddedPersistsAcrossRestart stores values, closes the broker,
// starts it again on the same address and data directory, and reads them
// back with the topic still compacted.
func TestEmbeddedPersistsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	emb, err := StartEmbedded(dir, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr := emb.Addr()
	cl := client(t, addr)
	topics := NewTopics(cl, 1, -1)
	st, err := NewStore(ctx, cl, topics, "_sluice.test.offsets")
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}} {
		if err := st.Save(ctx, kv[0], []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	emb.Close()

	emb, err = StartEmbedded(dir, addr, nil)
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	defer emb.Close()
	cl = client(t, addr)
	st, err = NewStore(ctx, cl, NewTopics(cl, 1, -1), "_sluice.test.offsets")
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(got["a"]) != "3" || string(got["b"]) != "2" || len(got) != 2 {
		t.Fatalf("after restart the store holds %q, want a=3 b=2", got)
	}
	if v, err := st.Get(ctx, "missing"); err != nil || v != nil {
		t.Fatalf("Get(missing) = %q, %v; want nil, nil", v, err)
	}
	cfgs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, "_sluice.test.offsets")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On("_sluice.test.offsets", nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil {
			policy = *c.Value
		}
	}
	if policy != "compact" {
		t.Fatalf("cleanup.policy = %q, want compact", policy)
	}
}

func TestTopicsEnsure(t *testing.T) {
	ctx := context.Background()
	emb, err := StartEmbedded(t.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	cl := client(t, emb.Addr())
	topics := NewTopics(cl, 1, -1)
	if err := topics.Ensure(ctx, "t3", TopicOptions{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	// Existing topics are left alone; a second topic creator sees it exists.
	if err := NewTopics(cl, 1, -1).Ensure(ctx, "t3", TopicOptions{}); err != nil {
		t.Fatalf("ensuring an existing topic: %v", err)
	}
	md, err := kadm.NewClient(cl).ListTopics(ctx, "t3")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md["t3"].Partitions); n != 3 {
		t.Fatalf("t3 has %d partitions, want 3", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"plain", Config{Brokers: []string{"k:9092"}}, ""},
		{"no brokers", Config{}, "brokers"},
		{"scram", Config{Brokers: []string{"k:9092"}, SASLMechanism: "SCRAM-SHA-512", SASLUser: "u"}, ""},
		{"sasl without user", Config{Brokers: []string{"k:9092"}, SASLMechanism: "PLAIN"}, "sasl-user"},
		{"unknown mechanism", Config{Brokers: []string{"k:9092"}, SASLMechanism: "GSSAPI"}, "sasl-mechanism"},
		{"cert without key", Config{Brokers: []string{"k:9092"}, TLS: true, CertFile: "c.pem"}, "tls-cert/tls-key"},
		{"lz4", Config{Brokers: []string{"k:9092"}, Compression: "lz4"}, ""},
		{"unknown compression", Config{Brokers: []string{"k:9092"}, Compression: "gzip"}, "compression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
			if tt.want == "" {
				if _, err := tt.cfg.ClientOpts(); err != nil {
					t.Fatalf("ClientOpts: %v", err)
				}
			}
		})
	}
	if _, err := (Config{Brokers: []string{"k:1"}, TLS: true, CAFile: "/nonexistent/ca.pem"}).ClientOpts(); err == nil || !strings.Contains(err.Error(), "tls-ca") {
		t.Fatalf("a missing CA file gave %v, want a tls-ca error", err)
	}
}

// TestProducerCompression produces with each Compression to the embedded
// broker and reads the codec of the stored batch from a raw fetch.
func TestProducerCompression(t *testing.T) {
	emb, err := StartEmbedded(t.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	want := map[string]int8{"": 4, "zstd": 4, "lz4": 3, "snappy": 2, "none": 0} // Kafka's codec ids
	for c, id := range want {
		t.Run("compression "+c, func(t *testing.T) {
			ctx := t.Context()
			topic := "c-" + cmp.Or(c, "default")
			cfg := Config{Brokers: []string{emb.Addr()}, Compression: c}
			opts, err := cfg.ClientOpts()
			if err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(append(append(opts, cfg.ProducerOpts()...), kgo.AllowAutoTopicCreation())...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			created, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, topic)
			if err != nil {
				t.Fatal(err)
			}
			value := []byte(strings.Repeat(`{"payload":"compressible"}`, 100))
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			req := kmsg.NewPtrFetchRequest()
			req.MaxWaitMillis, req.MaxBytes = 100, 1<<20
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic, ft.TopicID = topic, created.ID // by name before Fetch v13, by id since
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.PartitionMaxBytes = 1 << 20
			ft.Partitions = append(ft.Partitions, fp)
			req.Topics = append(req.Topics, ft)
			resp, err := req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
				t.Fatalf("fetch response %+v", resp)
			}
			p := resp.Topics[0].Partitions[0]
			var b kmsg.RecordBatch
			if err := b.ReadFrom(p.RecordBatches); err != nil {
				t.Fatalf("read the stored batch (error code %d, %d bytes): %v", p.ErrorCode, len(p.RecordBatches), err)
			}
			if got := int8(b.Attributes & 0x07); got != id {
				t.Errorf("batch codec %d, want %d", got, id)
			}
		})
	}
}
