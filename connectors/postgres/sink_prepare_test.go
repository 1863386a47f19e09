package postgres

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// cacheDest loads table t's catalog data into the sink's cache, as a first
// Write would: Prepare only plans for tables the sink knows.
func cacheDest(t *testing.T, s *Sink, table cdc.TableID) {
	t.Helper()
	d, err := loadDest(t.Context(), s.conn, table)
	if err != nil || d == nil {
		t.Fatalf("load %s: %v, %v", table, d, err)
	}
	s.setDest(table, d)
}

// prepare runs Prepare on recs and returns the plan it made for table.
func prepare(t *testing.T, s *Sink, recs []cdc.Record, table cdc.TableID) *upsertPlan {
	t.Helper()
	s.Prepare(recs)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.prepared) == 0 {
		t.Fatal("Prepare made no plan")
	}
	p := s.prepared[len(s.prepared)-1]
	if p.first != &recs[0] || p.plans[table] == nil {
		t.Fatalf("Prepare made no plan for %s", table)
	}
	return p.plans[table]
}

// TestSinkPreparedPlanGoesStale: a plan made before the destination table
// changed (here, a column added by the batch written in between) is not
// used; the batch is planned again against the table as it is.
func TestSinkPreparedPlanGoesStale(t *testing.T) {
	dsn, _ := newDB(t, usersTable)
	s, _ := openSink(t, dsn, ModeUpsert, true)
	cacheDest(t, s, usersID)
	wide := &cdc.TableSchema{Table: usersID, Key: []string{"id"}, Columns: append(append([]cdc.Column{}, usersSchema.Columns...),
		cdc.Column{Name: "extra", Kind: cdc.KindInt64, SourceType: "bigint", Nullable: true})}
	first := []cdc.Record{record(cdc.OpCreate, wide, cdc.Row{"id": int64(1), "name": "a", "note": "n", "extra": int64(7)})}
	second := []cdc.Record{record(cdc.OpUpdate, usersSchema, user(1, "b", absentNote)), record(cdc.OpCreate, usersSchema, user(2, "c", nil))}
	plan := prepare(t, s, second, usersID)
	before := s.dest(usersID)
	if err := s.Write(t.Context(), cdc.Applied{Records: first}); err != nil {
		t.Fatal(err)
	}
	if s.dest(usersID) == before {
		t.Fatal("adding a column kept the cached table")
	}
	if err := s.Write(t.Context(), cdc.Applied{Records: second}); err != nil {
		t.Fatal(err)
	}
	if plan.d == s.dest(usersID) {
		t.Error("the stale plan was used")
	}
	got := queryText(t, dsn, "SELECT id, name, note, extra FROM users ORDER BY id")
	if diff := cmp.Diff([]string{"1|b|n|7", "2|c|NULL|NULL"}, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.prepared) != 0 {
		t.Errorf("%d prepared batches kept after their write", len(s.prepared))
	}
}

// TestSinkPrepareWhileWriting prepares each batch while the one before is
// written, as the pipeline runtime does; with -race it checks what the two
// goroutines share. Batches that are never written (isolated, or dropped)
// leave no plans behind beyond maxPrepared.
func TestSinkPrepareWhileWriting(t *testing.T) {
	dsn, _ := newDB(t, usersTable)
	s, _ := openSink(t, dsn, ModeUpsert, false)
	const batches, rows = 30, 200
	all := make([][]cdc.Record, batches)
	for i := range all {
		for j := range rows {
			id := int64((i*rows + j) % 1000) // keys repeat across batches
			all[i] = append(all[i], record(cdc.OpUpdate, usersSchema, user(id, fmt.Sprintf("b%d", i), absentNote)))
		}
		if i%3 == 0 {
			all[i] = append(all[i], record(cdc.OpDelete, usersSchema, userKey(int64(i))))
		}
	}
	var wg sync.WaitGroup
	for i, b := range all {
		if i+1 < len(all) {
			next := all[i+1]
			wg.Go(func() { s.Prepare(next) })
		}
		if err := s.Write(t.Context(), cdc.Applied{Records: b}); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		wg.Wait()
	}
	for range maxPrepared + 3 {
		s.Prepare(all[0]) // never written again
	}
	s.mu.Lock()
	n := len(s.prepared)
	s.mu.Unlock()
	if n > maxPrepared {
		t.Errorf("%d prepared batches kept, want at most %d", n, maxPrepared)
	}
	// The same rows written by a sink without plans.
	dsn2, _ := newDB(t, usersTable)
	plain, _ := openSink(t, dsn2, ModeUpsert, false)
	for i, b := range all {
		if err := plain.Write(t.Context(), cdc.Applied{Records: b}); err != nil {
			t.Fatalf("plain batch %d: %v", i, err)
		}
	}
	const q = "SELECT id, name, note FROM users ORDER BY id"
	if diff := cmp.Diff(queryText(t, dsn2, q), queryText(t, dsn, q)); diff != "" {
		t.Errorf("prepared writes differ from plain ones (-plain +prepared):\n%s", diff)
	}
}

// BenchmarkPlanUpsert is the CPU-bound half of an upsert write (what
// Prepare does) for batches of benchBatch, without a server: the
// destination table is described by hand as create_tables makes it.
func BenchmarkPlanUpsert(b *testing.B) {
	d := &destTable{id: benchSchema.Table, ident: quoteTable(benchSchema.Table), index: map[string]int{},
		checked: map[*cdc.TableSchema]bool{}, uniques: [][]string{{"id"}}, pkFirst: true}
	for _, c := range benchSchema.Columns {
		d.index[c.Name] = len(d.cols)
		d.cols = append(d.cols, destCol{name: c.Name, ident: quoteIdent(c.Name), typ: c.SourceType})
	}
	batch := benchBatch(1)
	groups, err := groupByTable(batch.Records)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := planUpsert(newFormatter(d), groups[0], benchSchema.Key); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch.Records))/b.Elapsed().Seconds(), "rows/s")
}

func TestCopySize(t *testing.T) {
	im := func(vals ...string) *image {
		x := &image{vals: vals, state: make([]byte, len(vals))}
		for i, v := range vals {
			x.state[i] = present
			if v == "NULL" {
				x.state[i], x.vals[i] = null, ""
			}
		}
		return x
	}
	for _, tc := range []struct {
		name  string
		rows  []*image
		exact bool
	}{
		{"plain", []*image{im("1", "abc", "2026-01-01 00:00:00+00"), im("22", "", "x")}, true},
		{"nulls", []*image{im("1", "NULL", "y"), im("NULL", "NULL", "NULL")}, true},
		{"escapes grow past it", []*image{im("1", "a\tb\\c\nd", "e")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cols := []int{0, 1, 2}
			n := copySize(cols, tc.rows)
			got := len(appendCopyRows(nil, cols, tc.rows))
			if tc.exact && got != n {
				t.Errorf("copySize %d, rendered %d bytes", n, got)
			}
			if !tc.exact && got <= n {
				t.Errorf("copySize %d, rendered %d bytes: want more (escapes)", n, got)
			}
		})
	}
}
