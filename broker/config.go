package broker

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config says how to reach a Kafka cluster. The zero value plus Brokers is a
// plaintext connection without authentication.
type Config struct {
	// Brokers are the seed host:port addresses.
	Brokers []string
	// TLS enables TLS; CAFile, CertFile and KeyFile are optional PEM files
	// (a client certificate needs both CertFile and KeyFile).
	TLS                   bool
	CAFile                string
	CertFile, KeyFile     string
	TLSInsecureSkipVerify bool
	// SASLMechanism is "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
	// ClientID names this process to the brokers.
	ClientID string
	// Partitions and ReplicationFactor are used for topics Sluice creates
	// when a spec does not say (-1: broker default).
	Partitions        int32
	ReplicationFactor int16
	// MaxRecordBytes is the largest record Sluice produces and the
	// max.message.bytes of topics it creates (0: DefaultMaxRecordBytes).
	MaxRecordBytes int
	// Compression is the codec of produced batches: "zstd" (the default
	// when empty), "lz4", "snappy" or "none" (see ProducerOpts).
	Compression string
}

// CheckCompression reports, naming the valid values, a Config.Compression
// that is not "" (zstd), "zstd", "lz4", "snappy" or "none".
func CheckCompression(c string) error {
	valid := []string{"zstd", "lz4", "snappy", "none"}
	if c != "" && !slices.Contains(valid, c) {
		return fmt.Errorf("%q is not one of %s", c, strings.Join(valid, ", "))
	}
	return nil
}

// RecordLimit is MaxRecordBytes, or DefaultMaxRecordBytes when unset.
func (c Config) RecordLimit() int { return cmp.Or(c.MaxRecordBytes, DefaultMaxRecordBytes) }

// Validate reports configuration mistakes with the flag they come from.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one host:port is needed"))
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASLUser == "" {
			errs = append(errs, errors.New("sasl-user: needed with a SASL mechanism"))
		}
	default:
		errs = append(errs, fmt.Errorf("sasl-mechanism: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", c.SASLMechanism))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("tls-cert/tls-key: give both or neither"))
	}
	if err := CheckCompression(c.Compression); err != nil {
		errs = append(errs, fmt.Errorf("compression: %w", err))
	}
	return errors.Join(errs...)
}

// ClientOpts returns the kgo options that connect to the cluster. Callers
// add their own producer or consumer options.
func (c Config) ClientOpts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if c.TLS {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism()))
	}
	return opts, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLSInsecureSkipVerify} //nolint:gosec // opt-in flag
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls-ca %s: no PEM certificates found", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls-cert/tls-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// ProducerOpts are the producer settings every source uses: a short linger
// to batch, bounded buffers (producing blocks when they are full: that is
// the backpressure that keeps memory flat), batches as large as the topics
// allow, and c.Compression. Idempotence is kgo's default.
func (c Config) ProducerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.MaxBufferedRecords(20000),
		kgo.MaxBufferedBytes(64 << 20),
		kgo.ProducerBatchMaxBytes(int32(c.RecordLimit())),
		kgo.ProducerBatchCompression(c.codecs()...),
	}
}

// codecs are the batch codecs in order of preference: the chosen one, then
// those every broker takes (zstd needs Kafka 2.1 or later; franz-go uses
// the next codec on an older broker).
//
// zstd is the default: on change events it compresses 1.7 times smaller
// than LZ4 and decompresses twice as fast (franz-go's codecs, 1 MiB of
// change events: 75x vs 43x, 4.0 vs 1.9 GB/s), and decompressing is a
// sixth of a pipeline's CPU. Compressing costs more, though: capturing a
// backlog took a third more CPU than with LZ4 (measured: 19.5-20.8 vs
// 13.7-16.6 CPU-s per 1M rows), so lz4 suits a source host short of CPU
// and zstd a slow link.
func (c Config) codecs() []kgo.CompressionCodec {
	switch c.Compression {
	case "lz4":
		return []kgo.CompressionCodec{kgo.Lz4Compression(), kgo.SnappyCompression(), kgo.NoCompression()}
	case "snappy":
		return []kgo.CompressionCodec{kgo.SnappyCompression(), kgo.NoCompression()}
	case "none":
		return []kgo.CompressionCodec{kgo.NoCompression()}
	}
	return []kgo.CompressionCodec{kgo.ZstdCompression(), kgo.Lz4Compression(), kgo.SnappyCompression(), kgo.NoCompression()}
}
