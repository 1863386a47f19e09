package transforms

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// BenchmarkChain5 runs a requisition line item through five stages: two
// CEL expressions (set, filter), a code table, a uuid5 and a rename.
func BenchmarkChain5(b *testing.B) {
	chain, err := compileYAML(b, `
  - uuid5: {field: id, namespace: requisition-line-item, from: [id]}
  - map_values: {field: status, values: {A: APPROVED, S: SUBMITTED}}
  - set: {field: skipped, expr: 'row.quantityrequested == null || row.quantityrequested == 0'}
  - filter: {expr: 'op == "d" || row.status != "REJECTED"'}
  - rename: {table: requisition.requisition_line_items, fields: {rnrid: requisition_id, quantityrequested: requested_quantity}}
`)
	if err != nil {
		b.Fatal(err)
	}
	schema := &cdc.TableSchema{Table: cdc.TableID{Schema: "public", Name: "requisition_line_items"}, Key: []string{"id"},
		Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt32}, {Name: "rnrid", Kind: cdc.KindInt32},
			{Name: "status", Kind: cdc.KindString}, {Name: "quantityrequested", Kind: cdc.KindInt32, Nullable: true},
			{Name: "totalcost", Kind: cdc.KindDecimal, Nullable: true}, {Name: "modified", Kind: cdc.KindTimestampTZ}}}
	r := cdc.Record{Table: schema.Table, Op: cdc.OpUpdate, Key: cdc.Row{"id": int32(42)}, Schema: schema,
		After: cdc.Row{"id": int32(42), "rnrid": int32(7), "status": "A", "quantityrequested": int32(120),
			"totalcost": cdc.Decimal("150.0000"), "modified": time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		out, err := chain.Apply(ctx, r)
		if err != nil || len(out) != 1 {
			b.Fatal(out, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
