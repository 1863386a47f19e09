package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/internal/throwaway"
	"github.com/sluice-cdc/sluice/pipelines/examples"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
)

func newDemoCmd(lf *logFlags) *cobra.Command {
	var duration time.Duration
	var quiet bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Migrate a throwaway eLMIS-like database into an OpenLMIS v3-like one, live",
		Long: `Starts a throwaway PostgreSQL holding a small eLMIS v2-like database and an
empty OpenLMIS v3-like one, the embedded Kafka broker, and Sluice running the
example source and pipelines of pipelines/examples (elmis-to-v3.yaml). A load
generator keeps inserting, updating and deleting rows in the source; changes
are printed as they reach Kafka, and progress (captured, applied, lag) every
few seconds. On Ctrl-C or after --duration the load stops, Sluice catches
up, and the demo checks every destination table row by row against the
source: it runs every source row through the pipeline's stages (as the
pipeline does) and compares the result with the destination table, exiting
non-zero if any row differs, is missing or is extra.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := lf.logger()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("log-level") {
				log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			return runDemo(ctx, log, quiet)
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (default: until Ctrl-C)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "print progress only, not every event")
	return cmd
}

// demoInstance is the instance name of the demo's server.
const demoInstance = "demo"

func runDemo(ctx context.Context, log *slog.Logger, quiet bool) error {
	setup, cancelSetup := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancelSetup()
	fmt.Println("sluice demo: starting a throwaway PostgreSQL...")
	pg, err := throwaway.StartPostgres(setup)
	if err != nil {
		return err
	}
	defer pg.Stop(context.WithoutCancel(ctx))
	srcDSN, err := demoDatabase(setup, pg, "elmis", "elmis-v2.sql")
	if err != nil {
		return err
	}
	dstDSN, err := demoDatabase(setup, pg, "openlmis", "openlmis-v3.sql")
	if err != nil {
		return err
	}
	// The example specs name their databases by reference; the demo is the
	// environment they are resolved in.
	if err := errors.Join(os.Setenv("ELMIS_DSN", srcDSN), os.Setenv("V3_DSN", dstDSN)); err != nil {
		return err
	}
	sources, pipelines, err := exampleSpecs()
	if err != nil {
		return fmt.Errorf("example pipelines: %w", err)
	}
	checks, err := demoChecks(setup, srcDSN, sources, pipelines)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sluice-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	emb, err := broker.StartEmbedded(filepath.Join(dir, "kafka"), "127.0.0.1:0", log)
	if err != nil {
		return err
	}
	defer emb.Close()
	fmt.Printf("sluice demo: source postgres://127.0.0.1:%d/elmis, destination postgres://127.0.0.1:%d/openlmis (user postgres)\n", pg.Port(), pg.Port())
	fmt.Printf("sluice demo: embedded Kafka at %s (try: kcat -b %s -L); pipelines: %s\n", emb.Addr(), emb.Addr(), pipelineNames(pipelines))

	w := &worker.Worker{Instance: demoInstance, Kafka: broker.Config{Brokers: []string{emb.Addr()}, ClientID: "sluice-demo"}, Logger: log}
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return w.Run(gctx, sources, pipelines) })
	if !quiet {
		g.Go(func() error { return printEvents(gctx, emb.Addr(), "^demo\\.elmis\\.") })
	}
	g.Go(func() error { return demoProgress(gctx, w, sources, pipelines) })
	loadDone := make(chan error, 1)
	go func() { loadDone <- demoLoad(ctx, srcDSN) }()

	<-ctx.Done()
	if err := <-loadDone; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		stopRun()
		_ = g.Wait()
		return fmt.Errorf("load generator: %w", err)
	}
	fmt.Println("\nsluice demo: load stopped; waiting for the destination to catch up with the source...")
	ok, report := waitConverged(runCtx, srcDSN, dstDSN, checks, 90*time.Second)
	stopRun()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("demo shutdown", "err", err)
	}
	fmt.Print(report)
	if !ok {
		return errors.New("the destination differs from the source")
	}
	fmt.Println("sluice demo: every destination table matches its source table.")
	return nil
}

// demoDatabase creates a database from one of the example SQL files.
func demoDatabase(ctx context.Context, pg *throwaway.Postgres, name, file string) (string, error) {
	sql, err := examples.FS.ReadFile(file)
	if err != nil {
		return "", err
	}
	dsn, err := pg.CreateDatabase(ctx, name)
	if err != nil {
		return "", err
	}
	if err := pg.Exec(ctx, name, string(sql)); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return dsn, nil
}

// exampleSpecs parses and checks the example pipelines.
func exampleSpecs() ([]*spec.Source, []*spec.Pipeline, error) {
	const file = "elmis-to-v3.yaml"
	data, err := examples.FS.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	specs, err := spec.Parse(data, "pipelines/examples/"+file)
	if err != nil {
		return nil, nil, err
	}
	return checkSpecs(specs)
}

func pipelineNames(ps []*spec.Pipeline) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}

// demoLoad keeps changing the source like an eLMIS would: new requisitions
// with line items, status changes, edits and deletes, one transaction each.
func demoLoad(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The throwaway server runs with synchronous_commit off, which delays
	// WAL reaching the replication stream by up to 200ms; an OLTP source
	// commits synchronously.
	if _, err := conn.Exec(ctx, "SET synchronous_commit = on"); err != nil {
		return err
	}
	statuses := []string{"SUBMITTED", "AUTHORIZED", "IN_APPROVAL", "APPROVED", "RELEASED"}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			switch n := rand.IntN(10); {
			case n < 5:
				var id int
				if err := tx.QueryRow(ctx, `INSERT INTO requisitions (facilityid, programid, emergency) VALUES ($1, $2, $3) RETURNING id`,
					1+rand.IntN(20), 1+rand.IntN(4), rand.IntN(10) == 0).Scan(&id); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO requisition_line_items (rnrid, productid, quantityrequested, totalcost)
					SELECT $1, p, (random() * 500)::int, round((random() * 1000)::numeric, 4) FROM generate_series(1 + $2::int, 3 + $2::int) p`, id, rand.IntN(45))
				return err
			case n < 8:
				_, err := tx.Exec(ctx, `UPDATE requisitions SET status = $1, modifieddate = now() WHERE id = (SELECT id FROM requisitions ORDER BY random() LIMIT 1)`,
					statuses[rand.IntN(len(statuses))])
				if err == nil {
					_, err = tx.Exec(ctx, `UPDATE requisition_line_items SET quantityapproved = quantityrequested, remarks = 'approved ' || now()::text WHERE id = (SELECT id FROM requisition_line_items ORDER BY random() LIMIT 1)`)
				}
				return err
			default:
				_, err := tx.Exec(ctx, `DELETE FROM requisitions WHERE id = (SELECT id FROM requisitions ORDER BY random() LIMIT 1)`)
				return err
			}
		})
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
}

// printEvents prints every change as it reaches Kafka.
func printEvents(ctx context.Context, addr, pattern string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeRegex(), kgo.ConsumeTopics(pattern),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Regex consumption sees new topics only when metadata refreshes.
		kgo.MetadataMinAge(500*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachRecord(printEvent)
	}
}

func printEvent(r *kgo.Record) {
	if r.Value == nil {
		return // the tombstone after a delete
	}
	table := r.Topic[strings.LastIndex(r.Topic, ".")+1:]
	var env struct {
		Payload struct {
			Op     string         `json:"op"`
			Before map[string]any `json:"before"`
			After  map[string]any `json:"after"`
		} `json:"payload"`
	}
	_ = json.Unmarshal(r.Value, &env)
	row := env.Payload.After
	if row == nil {
		row = env.Payload.Before
	}
	if env.Payload.Op == "r" {
		return // snapshot reads: thousands of lines, shown in the progress counts
	}
	js, _ := json.Marshal(row)
	if len(js) > 110 {
		js = append(js[:107], "..."...)
	}
	fmt.Printf("  %-24s %s %s\n", table, env.Payload.Op, js)
}

func demoProgress(ctx context.Context, w *worker.Worker, sources []*spec.Source, pipelines []*spec.Pipeline) error {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var captured, acked int64
		for _, s := range sources {
			if st := w.Stats(s.Name); st != nil {
				captured += st.Captured.Load()
				acked += st.Acked.Load()
			}
		}
		var applied, lag, dead int64
		var latency time.Duration
		recent := time.Now().Add(-3 * time.Second).UnixNano()
		for _, p := range pipelines {
			if st := w.PipelineStats(p.Name); st != nil {
				applied += st.Applied.Load()
				lag += st.Lag.Load()
				dead += st.DeadLettered.Load()
				if st.LastCommit.Load() > recent { // pipelines that applied something since the last line
					latency = max(latency, time.Duration(st.LastLatency.Load()))
				}
			}
		}
		fmt.Printf("-- captured %d, on Kafka %d | applied %d, lag %d records, last source commit -> destination commit %s, dead letters %d\n",
			captured, acked, applied, lag, latency.Round(time.Millisecond), dead)
	}
}
