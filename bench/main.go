// Command bench measures Sluice on this machine and prints a report.
//
// Capture: throughput next to a bare pglogrepl reader (the ceiling),
// commit-to-Kafka latency at a steady rate, and the impact of capture on the
// source (pgbench TPS while Sluice captures, next to pgbench TPS while the
// bare reader captures).
//
// Apply: throughput of a pipeline applying a backlog already on Kafka, in
// upsert mode next to a bare multi-row INSERT ... ON CONFLICT and in insert
// mode next to a bare COPY (the ceilings), each Sluice run timed right
// before its ceiling and the ratio taken as the median over -apply-rounds
// rounds (a shared VM's speed drifts over minutes), and source-to-destination
// latency at a steady rate through source, Kafka and pipeline.
//
// Peak RSS of the sluice process is reported for every run.
//
// It builds cmd/sluice and runs it as a subprocess (with its embedded
// broker), against a throwaway PostgreSQL it starts and stops itself. It
// never asserts: it reports figures and whether each target was met.
//
//	go run ./bench [-rows 1000000] [-latency-duration 30s] [-pgbench-duration 30s]
//	               [-apply-rows 1000000] [-apply-batch-rows 5000] [-apply-rounds 3]
//	               [-skip throughput,latency,pgbench,apply,apply-latency] [-json FILE]
//
// Linux only: peak RSS and CPU time are read from /proc.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// options are the command-line flags.
type options struct {
	rows            int
	txRows          int
	latencyDuration time.Duration
	latencyRate     int
	pgbenchDuration time.Duration
	pgbenchScale    int
	applyRows       int
	applyBatchRows  int
	applyRounds     int
	skip            map[string]bool
	jsonPath        string
	sluiceBin       string
	sluiceLogLevel  string
}

// scenarios are the parts of the benchmark -skip accepts.
var scenarios = []string{"throughput", "latency", "pgbench", "apply", "apply-latency"}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var skip string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rows, "rows", 1_000_000, "rows inserted for the throughput run")
	fs.IntVar(&o.txRows, "tx-rows", 1000, "rows per transaction in the throughput run")
	fs.DurationVar(&o.latencyDuration, "latency-duration", 30*time.Second, "how long the steady-rate latency run inserts")
	fs.IntVar(&o.latencyRate, "latency-rate", 1000, "rows per second in the latency run (in 100 transactions per second)")
	fs.DurationVar(&o.pgbenchDuration, "pgbench-duration", 30*time.Second, "duration of each pgbench run (pgbench -T)")
	fs.IntVar(&o.pgbenchScale, "pgbench-scale", 10, "pgbench scale factor (pgbench -i -s)")
	fs.IntVar(&o.applyRows, "apply-rows", 1_000_000, "rows put on Kafka, then applied, in the apply run")
	fs.IntVar(&o.applyBatchRows, "apply-batch-rows", spec.DefaultBatchRows, "sink.batch_rows of the apply run's pipelines")
	fs.IntVar(&o.applyRounds, "apply-rounds", 3, "rounds of the apply run (each: sluice and bare upsert, sluice insert and bare COPY); the median ratio counts")
	fs.StringVar(&skip, "skip", "", "comma-separated scenarios to skip: "+strings.Join(scenarios, ","))
	fs.StringVar(&o.jsonPath, "json", "", "also write the figures as JSON to this file")
	fs.StringVar(&o.sluiceBin, "sluice", "", "use this sluice binary instead of building ./cmd/sluice")
	fs.StringVar(&o.sluiceLogLevel, "sluice-log-level", "info", "sluice --log-level (its logs stay in the work dir; see SLUICE_KEEP_TMP)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var errs []error
	if o.rows < 1 || o.txRows < 1 {
		errs = append(errs, errors.New("-rows and -tx-rows must be positive"))
	}
	if o.applyRows < 1 {
		errs = append(errs, errors.New("-apply-rows must be positive"))
	}
	if o.applyRounds < 1 {
		errs = append(errs, errors.New("-apply-rounds must be positive"))
	}
	if o.applyBatchRows < 1 || o.applyBatchRows > spec.MaxBatchRows {
		errs = append(errs, fmt.Errorf("-apply-batch-rows must be 1 to %d", spec.MaxBatchRows))
	}
	if o.latencyRate < 100 || o.latencyRate%100 != 0 {
		errs = append(errs, errors.New("-latency-rate must be a positive multiple of 100"))
	}
	if o.latencyDuration < time.Second || o.pgbenchDuration < time.Second {
		errs = append(errs, errors.New("-latency-duration and -pgbench-duration must be at least 1s"))
	}
	if o.pgbenchScale < 1 {
		errs = append(errs, errors.New("-pgbench-scale must be positive"))
	}
	o.skip = map[string]bool{}
	for _, s := range strings.Split(skip, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !contains(scenarios, s) {
			errs = append(errs, fmt.Errorf("-skip: unknown scenario %q (have %s)", s, strings.Join(scenarios, ", ")))
		}
		o.skip[s] = true
	}
	return o, errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

// run sets up the environment, runs every scenario not skipped, and prints
// the report. A failed scenario is reported and the others still run; the
// error is returned at the end so the exit status shows it.
func run(ctx context.Context, o options) (err error) {
	began := time.Now()
	e, err := newEnv(ctx, o)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, e.close()) }()
	rep := newReport(ctx, e, o)
	var errs []error
	step := func(name string, fn func() error) {
		if o.skip[name] || ctx.Err() != nil {
			return
		}
		progress("== %s", name)
		if err := fn(); err != nil {
			err = fmt.Errorf("%s: %w", name, err)
			rep.Errors = append(rep.Errors, err.Error())
			errs = append(errs, err)
		}
	}
	step("throughput", func() (err error) { rep.Throughput, err = runThroughput(ctx, e, o); return err })
	step("latency", func() (err error) { rep.Latency, err = runLatency(ctx, e, o); return err })
	step("pgbench", func() (err error) { rep.Pgbench, err = runPgbench(ctx, e, o); return err })
	step("apply", func() (err error) { rep.Apply, err = runApply(ctx, e, o); return err })
	step("apply-latency", func() (err error) { rep.ApplyLatency, err = runApplyLatency(ctx, e, o); return err })
	rep.TotalSeconds = time.Since(began).Seconds()
	rep.finish()
	rep.print(os.Stdout)
	if o.jsonPath != "" {
		errs = append(errs, rep.writeJSON(o.jsonPath))
	}
	return errors.Join(append(errs, ctx.Err())...)
}

// started is when the process began; progress lines are stamped relative to it.
var started = time.Now()

// progress prints a progress line to stderr; the report goes to stdout.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}
