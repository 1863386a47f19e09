package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/control"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/transforms"
)

type serverFlags struct {
	instance    string
	dataDir     string
	kafkaListen string
	files       []string
	kafka       broker.Config
	partitions  int32
	replication int16
	syncWrites  bool
	listen      string
	tokensFile  string
	listenCert  string
	listenKey   string
	debugListen string
}

func newServerCmd(lf *logFlags) *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run sources and pipelines: capture changes into Kafka, apply them to destinations",
		Long: `Runs sources and pipelines until SIGINT or SIGTERM: those of the spec files
given with -f (applied at start like "sluice apply"), and those created through
the REST API on --listen. Specs and desired states are kept in Kafka, so a
restart runs again what ran before.

Without --brokers it starts an embedded Kafka-protocol broker (state under
--data-dir, listening on --kafka-listen) that any Kafka client can use; with
--brokers it uses that cluster instead, through the same code path.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := lf.logger()
			if err != nil {
				return err
			}
			if err := spec.ValidateInstance(f.instance); err != nil {
				return fmt.Errorf("--instance: %w", err)
			}
			sources, pipelines, err := loadSpecs(f.files)
			if err != nil {
				return err
			}
			kc := f.kafka
			kc.Partitions, kc.ReplicationFactor = f.partitions, f.replication
			if kc.ClientID == "" {
				kc.ClientID = "sluice-" + f.instance
			}
			if kc.SASLPassword == "" {
				kc.SASLPassword = os.Getenv("SLUICE_SASL_PASSWORD")
			}
			if err := broker.CheckCompression(kc.Compression); err != nil {
				return fmt.Errorf("--compression: %w", err)
			}
			if f.debugListen != "" {
				if err := checkDebugListen(f.debugListen); err != nil {
					return err
				}
			}
			setGCPercent(log)
			if len(kc.Brokers) == 0 {
				var opts []broker.EmbeddedOption
				if f.syncWrites {
					opts = append(opts, broker.SyncWrites())
				}
				emb, err := broker.StartEmbedded(filepath.Join(f.dataDir, "kafka"), f.kafkaListen, log, opts...)
				if err != nil {
					return err
				}
				defer emb.Close()
				log.Info("embedded Kafka broker listening", "addr", emb.Addr(), "data_dir", filepath.Join(f.dataDir, "kafka"))
				kc.Brokers = []string{emb.Addr()}
			}
			tokens, err := loadTokens(f.tokensFile)
			if err != nil {
				return err
			}
			if err := checkListen(f.listen, tokens); err != nil {
				return err
			}
			var docs []control.Document
			for _, sp := range append(sourceSpecs(sources), pipelineSpecs(pipelines)...) {
				js, err := json.Marshal(sp)
				if err != nil {
					return err
				}
				docs = append(docs, control.Document{Spec: sp, Format: "json",
					Text: `{"kind": "` + string(sp.Kind()) + `", ` + string(js[1:])})
			}
			log.Info("sluice server starting", "instance", f.instance, "sources", len(sources),
				"pipelines", len(pipelines), "listen", f.listen, "version", version)
			err = runServer(cmd.Context(), serverRun{
				instance: f.instance, kafka: kc, log: log, docs: docs, tokens: tokens,
				listen: f.listen, certFile: f.listenCert, keyFile: f.listenKey, debugListen: f.debugListen,
			})
			log.Info("sluice server stopped")
			if cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.instance, "instance", "sluice", "instance name: every slot, publication and topic name derives from it")
	fl.StringVar(&f.dataDir, "data-dir", "sluice-data", "directory for the embedded broker's state")
	fl.StringVar(&f.kafkaListen, "kafka-listen", "127.0.0.1:9092", "address of the embedded broker (without --brokers)")
	fl.StringSliceVarP(&f.files, "file", "f", nil, "spec files or directories to apply at start (repeatable); more can be applied through the API")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address of the REST API, /metrics, /healthz and /readyz")
	fl.StringVar(&f.tokensFile, "tokens-file", "", "file of API bearer tokens, one role:token per line (role admin or read); or env SLUICE_TOKENS")
	fl.StringVar(&f.listenCert, "listen-tls-cert", "", "serve the API over TLS with this PEM certificate (with --listen-tls-key)")
	fl.StringVar(&f.listenKey, "listen-tls-key", "", "PEM key of --listen-tls-cert")
	fl.StringVar(&f.debugListen, "debug-listen", "", "serve Go's profiles (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060 (default: off)")
	fl.BoolVar(&f.syncWrites, "kafka-sync-writes", false, "embedded broker: fsync each batch before acknowledging it, so acknowledged records survive a power loss too (slower)")
	fl.StringSliceVar(&f.kafka.Brokers, "brokers", nil, "external Kafka bootstrap brokers host:port,... (no embedded broker)")
	fl.BoolVar(&f.kafka.TLS, "tls", false, "connect to the brokers with TLS")
	fl.StringVar(&f.kafka.CAFile, "tls-ca", "", "PEM file of CA certificates for the brokers")
	fl.StringVar(&f.kafka.CertFile, "tls-cert", "", "PEM client certificate")
	fl.StringVar(&f.kafka.KeyFile, "tls-key", "", "PEM client key")
	fl.BoolVar(&f.kafka.TLSInsecureSkipVerify, "tls-insecure-skip-verify", false, "do not verify the brokers' certificates (testing only)")
	fl.StringVar(&f.kafka.SASLMechanism, "sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fl.StringVar(&f.kafka.SASLUser, "sasl-user", "", "SASL user")
	fl.StringVar(&f.kafka.SASLPassword, "sasl-password", "", "SASL password (prefer env SLUICE_SASL_PASSWORD)")
	fl.Int32Var(&f.partitions, "topic-partitions", 1, "partitions of topics Sluice creates, unless a spec says otherwise")
	fl.IntVar(&f.kafka.MaxRecordBytes, "max-record-bytes", broker.DefaultMaxRecordBytes,
		"largest change record (JSON) Sluice produces; also the max.message.bytes of topics it creates. Larger costs memory")
	fl.Int16Var(&f.replication, "topic-replication-factor", -1, "replication factor of topics Sluice creates (-1: broker default)")
	fl.StringVar(&f.kafka.Compression, "compression", "zstd",
		"codec of the batches sources produce: zstd (smallest topics, default), lz4 (least CPU on the source's host), snappy or none")
	return cmd
}

// loadSpecs parses and validates the spec files; every problem is
// reported with its file and field path. A pipeline must name a source of
// the same files, and its stages must compile.
func loadSpecs(files []string) ([]*spec.Source, []*spec.Pipeline, error) {
	if len(files) == 0 {
		return nil, nil, nil
	}
	specs, err := spec.ParseFiles(files...)
	if err != nil {
		return nil, nil, err
	}
	return checkSpecs(specs)
}

// checkSpecs splits specs into sources and pipelines and checks what a
// pipeline refers to: its source, and that its stages compile.
func checkSpecs(specs []spec.Spec) ([]*spec.Source, []*spec.Pipeline, error) {
	var sources []*spec.Source
	var pipelines []*spec.Pipeline
	bySource := map[string]*spec.Source{}
	for _, s := range specs {
		switch v := s.(type) {
		case *spec.Source:
			sources = append(sources, v)
			bySource[v.Name] = v
		case *spec.Pipeline:
			pipelines = append(pipelines, v)
		}
	}
	var errs []error
	for _, p := range pipelines {
		if err := p.CheckReferences(bySource); err != nil {
			errs = append(errs, fmt.Errorf("pipeline %q: %w", p.Name, err))
		}
		if _, err := transforms.Compile(p.Stages); err != nil {
			errs = append(errs, fmt.Errorf("pipeline %q: %w", p.Name, err))
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return sources, pipelines, nil
}

// serverGCPercent is the GOGC of `sluice server` unless the environment
// sets one. Pipelines allocate fast and briefly (a poll's decoded records
// live until its batch commits); with Go's default of 100 the heap grows
// to twice what is live between collections. Measured on the 1M-row apply
// benchmark (zstd batches, 512 KiB fetches): peak RSS 208-258 MiB at 100,
// 197-199 MiB at 75, 176 MiB at 50; CPU 11.8-13.0 s, 12.0-13.4 s and
// 14.4-15.1 s.
const serverGCPercent = 75

func setGCPercent(log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(serverGCPercent)
	log.Debug("garbage collector target set", "gogc", serverGCPercent)
}
