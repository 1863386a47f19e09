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
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-cdc/sluice/broker"
	"github.com/sluice-cdc/sluice/internal/throwaway"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/pipelines/worker"
)

// demoTables are the eLMIS-like tables the demo captures.
var demoTables = []string{"facilities", "programs", "products", "requisitions", "requisition_line_items"}

const demoSchema = `
CREATE TABLE facilities (id serial PRIMARY KEY, code text NOT NULL UNIQUE, name text NOT NULL, active boolean NOT NULL DEFAULT true);
CREATE TABLE programs (id serial PRIMARY KEY, code text NOT NULL UNIQUE, name text NOT NULL);
CREATE TABLE products (id serial PRIMARY KEY, code text NOT NULL UNIQUE, primaryname text NOT NULL, dispensingunit text, packsize int NOT NULL);
CREATE TABLE requisitions (id serial PRIMARY KEY, facilityid int NOT NULL REFERENCES facilities, programid int NOT NULL REFERENCES programs,
  status text NOT NULL DEFAULT 'INITIATED', emergency boolean NOT NULL DEFAULT false, createddate timestamptz NOT NULL DEFAULT now(), modifieddate timestamptz);
CREATE TABLE requisition_line_items (id serial PRIMARY KEY, rnrid int NOT NULL REFERENCES requisitions ON DELETE CASCADE, productid int NOT NULL REFERENCES products,
  quantityrequested int, quantityapproved int, totalcost numeric(15,4), remarks text);
INSERT INTO facilities (code, name) SELECT 'F' || g, 'Health facility ' || g FROM generate_series(1, 20) g;
INSERT INTO programs (code, name) VALUES ('ARV', 'Antiretroviral'), ('TB', 'Tuberculosis'), ('MAL', 'Malaria'), ('FP', 'Family planning');
INSERT INTO products (code, primaryname, dispensingunit, packsize) SELECT 'P' || g, 'Product ' || g, 'tablet', 10 * g FROM generate_series(1, 50) g;
INSERT INTO requisitions (facilityid, programid, status) SELECT 1 + g % 20, 1 + g % 4, (ARRAY['INITIATED','SUBMITTED','AUTHORIZED','APPROVED'])[1 + g % 4] FROM generate_series(1, 100) g;
INSERT INTO requisition_line_items (rnrid, productid, quantityrequested, totalcost) SELECT 1 + g % 100, 1 + g % 50, g % 500, (g % 500) * 1.25 FROM generate_series(1, 500) g;
`

func newDemoCmd(lf *logFlags) *cobra.Command {
	var duration time.Duration
	var quiet bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Capture a throwaway eLMIS-like PostgreSQL into the embedded broker, with live changes",
		Long: `Starts a throwaway PostgreSQL with a small eLMIS-like schema, the embedded
Kafka broker and a Sluice source, then keeps inserting, updating and deleting
rows. Every change is printed as it arrives on Kafka. On Ctrl-C or after
--duration it stops and checks that the latest image of every row on Kafka
equals the source table, exiting non-zero if not.`,
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

func runDemo(ctx context.Context, log *slog.Logger, quiet bool) error {
	setup, cancelSetup := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancelSetup()
	fmt.Println("sluice demo: starting a throwaway PostgreSQL...")
	pg, err := throwaway.StartPostgres(setup)
	if err != nil {
		return err
	}
	defer pg.Stop(context.WithoutCancel(ctx))
	dsn, err := pg.CreateDatabase(setup, "elmis")
	if err != nil {
		return err
	}
	if err := pg.Exec(setup, "elmis", demoSchema); err != nil {
		return fmt.Errorf("demo schema: %w", err)
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
	fmt.Printf("sluice demo: source postgres://127.0.0.1:%d/elmis, embedded Kafka at %s (try: kcat -b %s -L)\n", pg.Port(), emb.Addr(), emb.Addr())

	src := &spec.Source{Name: "elmis", Postgres: &spec.Postgres{DSN: dsn, Tables: demoTables}}
	src.SetDefaults()
	src.Postgres.HeartbeatInterval = spec.Duration(2 * time.Second)
	if err := src.Validate(); err != nil {
		return err
	}
	w := &worker.Worker{Instance: "demo", Kafka: broker.Config{Brokers: []string{emb.Addr()}, ClientID: "sluice-demo"}, Logger: log}
	img := newKafkaImage()

	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { return w.Run(gctx, []*spec.Source{src}) })
	g.Go(func() error { return img.consume(gctx, emb.Addr(), "^demo\\.elmis\\.", quiet) })
	g.Go(func() error { return demoProgress(gctx, w, img) })
	loadDone := make(chan error, 1)
	go func() { loadDone <- demoLoad(ctx, dsn) }()

	<-ctx.Done()
	if err := <-loadDone; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		stopRun()
		_ = g.Wait()
		return fmt.Errorf("load generator: %w", err)
	}
	fmt.Println("\nsluice demo: load stopped; waiting for Kafka to catch up with the source...")
	ok, report := waitConverged(runCtx, dsn, img, 60*time.Second)
	stopRun()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("demo shutdown", "err", err)
	}
	fmt.Print(report)
	if !ok {
		return errors.New("the image on Kafka differs from the source")
	}
	fmt.Println("sluice demo: every table's latest image on Kafka matches the source.")
	return nil
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

// kafkaImage is the latest value of every key of every table topic: what a
// compacted topic converges to.
type kafkaImage struct {
	mu     sync.Mutex
	rows   map[string]map[string]bool // table -> keys alive
	events int64
	byOp   map[string]int64
}

func newKafkaImage() *kafkaImage {
	return &kafkaImage{rows: map[string]map[string]bool{}, byOp: map[string]int64{}}
}

func (k *kafkaImage) consume(ctx context.Context, addr, pattern string, quiet bool) error {
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
		fs.EachRecord(func(r *kgo.Record) { k.apply(r, quiet) })
	}
}

func (k *kafkaImage) apply(r *kgo.Record, quiet bool) {
	table := r.Topic[strings.LastIndex(r.Topic, ".")+1:]
	var key map[string]any
	_ = json.Unmarshal(r.Key, &key)
	if p, ok := key["payload"].(map[string]any); ok {
		key = p
	}
	id := fmt.Sprint(key["id"])
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.rows[table] == nil {
		k.rows[table] = map[string]bool{}
	}
	if r.Value == nil {
		delete(k.rows[table], id)
		return
	}
	var env struct {
		Payload struct {
			Op    string         `json:"op"`
			After map[string]any `json:"after"`
		} `json:"payload"`
	}
	_ = json.Unmarshal(r.Value, &env)
	op := env.Payload.Op
	k.events++
	k.byOp[op]++
	if op == "d" {
		delete(k.rows[table], id)
	} else {
		k.rows[table][id] = true
	}
	if !quiet && op != "r" {
		after, _ := json.Marshal(env.Payload.After)
		if len(after) > 110 {
			after = append(after[:107], "..."...)
		}
		fmt.Printf("  %-24s %s id=%-5s %s\n", table, op, id, after)
	}
}

func demoProgress(ctx context.Context, w *worker.Worker, img *kafkaImage) error {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		st := w.Stats("elmis")
		if st == nil {
			continue
		}
		img.mu.Lock()
		fmt.Printf("-- captured %d, acked by Kafka %d, checkpoints %d, last source-commit-to-Kafka-ack %s | consumed %d (r=%d c=%d u=%d d=%d)\n",
			st.Captured.Load(), st.Acked.Load(), st.Committed.Load(), time.Duration(st.LastCommitLag.Load()).Round(time.Millisecond),
			img.events, img.byOp["r"], img.byOp["c"], img.byOp["u"], img.byOp["d"])
		img.mu.Unlock()
	}
}

// waitConverged compares the key sets of every source table with the image
// on Kafka until they match or the timeout passes.
func waitConverged(ctx context.Context, dsn string, img *kafkaImage, timeout time.Duration) (bool, string) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false, fmt.Sprintf("cannot connect to the source: %v\n", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(timeout)
	for {
		var b strings.Builder
		ok := true
		fmt.Fprintf(&b, "%-24s %8s %8s  %s\n", "table", "source", "kafka", "result")
		for _, t := range demoTables {
			var ids []string
			rows, err := conn.Query(ctx, "SELECT id::text FROM "+pgx.Identifier{t}.Sanitize())
			if err == nil {
				ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			if err != nil {
				return false, fmt.Sprintf("read %s: %v\n", t, err)
			}
			img.mu.Lock()
			have := img.rows[t]
			match := len(have) == len(ids)
			for _, id := range ids {
				if !have[id] {
					match = false
					break
				}
			}
			n := len(have)
			img.mu.Unlock()
			res := "match"
			if !match {
				res, ok = "DIFFERS", false
			}
			fmt.Fprintf(&b, "%-24s %8d %8d  %s\n", t, len(ids), n, res)
		}
		if ok || time.Now().After(deadline) || ctx.Err() != nil {
			return ok, b.String()
		}
		time.Sleep(500 * time.Millisecond)
	}
}
