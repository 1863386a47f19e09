package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/internal/throwaway"
)

// TestDemoCheck checks that the demo's check accepts a destination that
// holds exactly what the stages make of the source, and catches a
// computed value that differs.
func TestDemoCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pg, err := throwaway.StartPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop(context.WithoutCancel(ctx))
	srcDSN, err := demoDatabase(ctx, pg, "elmis", "elmis-v2.sql")
	if err != nil {
		t.Fatal(err)
	}
	dstDSN, err := demoDatabase(ctx, pg, "openlmis", "openlmis-v3.sql")
	if err != nil {
		t.Fatal(err)
	}
	sources, pipelines, err := exampleSpecs()
	if err != nil {
		t.Fatal(err)
	}
	checks, err := demoChecks(ctx, srcDSN, sources, pipelines)
	if err != nil {
		t.Fatal(err)
	}
	src, err := pgx.Connect(ctx, srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	dst, err := pgx.Connect(ctx, dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close(ctx)

	if ok, report, err := compareAll(ctx, src, dst, checks); err != nil || ok {
		t.Fatalf("an empty destination: ok %v, %v\n%s", ok, err, report)
	}
	// Fill the destination with what the check expects, as the pipelines
	// would.
	images, err := expected(ctx, src, checks)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := dst.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range images {
		if err := insertRows(ctx, tx, pgx.Identifier{d.table.Schema, d.table.Name}.Sanitize(), d); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, report, err := compareAll(ctx, src, dst, checks); err != nil || !ok {
		t.Fatalf("a filled destination: ok %v, %v\n%s", ok, err, report)
	}
	// A mapped status that differs, and a uuid5 reference that differs.
	for _, q := range []string{
		`UPDATE requisition.requisitions SET status = 'REJECTED' WHERE id = (SELECT id FROM requisition.requisitions LIMIT 1)`,
		`UPDATE referencedata.orderables SET dispensableid = gen_random_uuid() WHERE dispensableid IS NOT NULL AND productcode = 'P1'`,
	} {
		if _, err := dst.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	ok, report, err := compareAll(ctx, src, dst, checks)
	if err != nil || ok {
		t.Fatalf("a changed destination: ok %v, %v\n%s", ok, err, report)
	}
	t.Log(report)
	for _, want := range []string{"requisition.requisitions", "referencedata.orderables"} {
		for _, line := range strings.Split(report, "\n") {
			if strings.HasPrefix(line, want+" ") && !strings.Contains(line, " 1        1  DIFFERS") {
				t.Errorf("report line %q: want 1 missing, 1 extra", line)
			}
		}
	}
}
