// Package broker connects Sluice to Kafka. It starts the embedded
// Kafka-protocol broker (franz-go's kfake with on-disk persistence) or
// describes an external cluster, and in both cases hands out ordinary kgo
// clients that speak the Kafka wire protocol over TCP: there is one code path
// whichever broker is on the other end.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is a single-node Kafka-protocol broker running inside this
// process, persisting its log and committed group offsets under a data
// directory so they survive a restart (or a SIGKILL) of the process.
type Embedded struct {
	cluster *kfake.Cluster
	addr    string
}

// EmbeddedOption configures the embedded broker.
type EmbeddedOption func(*[]kfake.Opt)

// SyncWrites makes the broker fsync every produced batch before it
// acknowledges it, so acknowledged records survive a power loss or an OS
// crash too (a process kill is survived either way).
func SyncWrites() EmbeddedOption {
	return func(o *[]kfake.Opt) { *o = append(*o, kfake.SyncWrites()) }
}

// StartEmbedded starts the embedded broker listening on listen (host:port;
// port 0 picks a free one) with its state under dataDir.
func StartEmbedded(dataDir, listen string, logger *slog.Logger, options ...EmbeddedOption) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: listen port %q: %w", portStr, err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded broker: data dir: %w", err)
	}
	if port == 0 {
		// kfake treats port 0 as "pick one" only through its own default; ask
		// the kernel for a free port so the address is known up front.
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("embedded broker: pick a port on %s: %w", host, err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ClusterID("sluice-embedded"),
		kfake.DataDir(dataDir),
		kfake.DefaultNumPartitions(1),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(embeddedMaxMessageBytes)}),
		// kfake binds 127.0.0.1; bind the host the operator asked for.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
	}
	if logger != nil {
		opts = append(opts, kfake.WithLogger(kfakeLogger{logger}))
	}
	for _, o := range options {
		o(&opts)
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker on %s (data %s): %w", listen, dataDir, err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, fmt.Errorf("embedded broker on %s: no listener", listen)
	}
	return &Embedded{cluster: c, addr: addrs[0]}, nil
}

// Addr is the host:port clients connect to.
func (e *Embedded) Addr() string { return e.addr }

// Close stops the broker, flushing its state to disk.
func (e *Embedded) Close() { e.cluster.Close() }

// kfakeLogger forwards kfake's warnings and errors to slog; its info and
// debug chatter stays quiet.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		k.l.Log(context.Background(), slog.LevelError, "embedded broker: "+fmt.Sprintf(msg, args...))
	case kfake.LogLevelWarn:
		k.l.Log(context.Background(), slog.LevelWarn, "embedded broker: "+fmt.Sprintf(msg, args...))
	}
}
