package transforms

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

func schema() *cdc.TableSchema {
	return &cdc.TableSchema{
		Table: cdc.TableID{Schema: "public", Name: "facilities"},
		Columns: []cdc.Column{
			{Name: "id", Kind: cdc.KindInt32}, {Name: "name", Kind: cdc.KindString},
			{Name: "draft", Kind: cdc.KindBool, Nullable: true}, {Name: "größe", Kind: cdc.KindDecimal},
		},
		Key: []string{"id"},
	}
}

func record(op cdc.Op, before, after cdc.Row) cdc.Record {
	return cdc.Record{Table: cdc.TableID{Schema: "public", Name: "facilities"}, Op: op,
		Key: cdc.Row{"id": int32(7)}, Before: before, After: after, Schema: schema()}
}

func TestChain(t *testing.T) {
	full := cdc.Row{"id": int32(7), "name": "Clinic", "draft": nil, "größe": cdc.Decimal("1.50")}
	tests := []struct {
		name    string
		stages  string
		in      cdc.Record
		want    []cdc.Record
		wantErr string
	}{
		{"no stages", `[]`, record(cdc.OpCreate, nil, full), []cdc.Record{record(cdc.OpCreate, nil, full)}, ""},
		{"rename table and fields", `[{rename: {table: referencedata.facility, fields: {id: facility_id, größe: size}}}]`,
			record(cdc.OpUpdate, cdc.Row{"id": int32(7), "größe": nil}, full),
			[]cdc.Record{{
				Table: cdc.TableID{Schema: "referencedata", Name: "facility"}, Op: cdc.OpUpdate,
				Key:    cdc.Row{"facility_id": int32(7)},
				Before: cdc.Row{"facility_id": int32(7), "size": nil},
				After:  cdc.Row{"facility_id": int32(7), "name": "Clinic", "draft": nil, "size": cdc.Decimal("1.50")},
				Schema: &cdc.TableSchema{Table: cdc.TableID{Schema: "referencedata", Name: "facility"},
					Columns: []cdc.Column{{Name: "facility_id", Kind: cdc.KindInt32}, {Name: "name", Kind: cdc.KindString},
						{Name: "draft", Kind: cdc.KindBool, Nullable: true}, {Name: "size", Kind: cdc.KindDecimal}},
					Key: []string{"facility_id"}},
			}}, ""},
		{"rename onto an existing field", `[{rename: {fields: {name: draft}}}]`, record(cdc.OpCreate, nil, full), nil,
			`stages[0].rename: fields "name" and "draft" both become "draft"`},
		{"drop keeps absent absent and deletes as they are", `[{drop: [draft, größe]}]`,
			record(cdc.OpDelete, cdc.Row{"id": int32(7), "name": "x"}, nil),
			[]cdc.Record{{Table: cdc.TableID{Schema: "public", Name: "facilities"}, Op: cdc.OpDelete,
				Key: cdc.Row{"id": int32(7)}, Before: cdc.Row{"id": int32(7), "name": "x"},
				Schema: &cdc.TableSchema{Table: cdc.TableID{Schema: "public", Name: "facilities"},
					Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt32}, {Name: "name", Kind: cdc.KindString}},
					Key:     []string{"id"}}}}, ""},
		{"drop a key field", `[{drop: [id]}]`, record(cdc.OpCreate, nil, full), nil,
			`stages[0].drop: cannot drop "id": it is part of the key of public.facilities`},
		{"keep keeps the key", `[{keep: [name]}, {rename: {fields: {name: label}}}]`, record(cdc.OpCreate, nil, full),
			[]cdc.Record{{Table: cdc.TableID{Schema: "public", Name: "facilities"}, Op: cdc.OpCreate,
				Key: cdc.Row{"id": int32(7)}, After: cdc.Row{"id": int32(7), "label": "Clinic"},
				Schema: &cdc.TableSchema{Table: cdc.TableID{Schema: "public", Name: "facilities"},
					Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt32}, {Name: "label", Kind: cdc.KindString}},
					Key:     []string{"id"}}}}, ""},
		{"keep a field that is not there", `[{keep: [nothing]}]`, record(cdc.OpCreate, nil, cdc.Row{"id": int32(7), "name": "x"}),
			[]cdc.Record{{Table: cdc.TableID{Schema: "public", Name: "facilities"}, Op: cdc.OpCreate,
				Key: cdc.Row{"id": int32(7)}, After: cdc.Row{"id": int32(7)},
				Schema: &cdc.TableSchema{Table: cdc.TableID{Schema: "public", Name: "facilities"},
					Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt32}}, Key: []string{"id"}}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := spec.Parse([]byte("kind: Pipeline\nname: p\nfrom: {source: s}\nsink: {postgres: {dsn: x}}\nstages: "+tt.stages+"\n"), "p.yaml")
			if err != nil {
				t.Fatal(err)
			}
			chain, err := Compile(specs[0].(*spec.Pipeline).Stages)
			if err != nil {
				t.Fatal(err)
			}
			in := tt.in
			inCopy := record(in.Op, clone(in.Before), clone(in.After))
			got, err := chain.Apply(context.Background(), in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("output (-want +got):\n%s", d)
			}
			if d := cmp.Diff(inCopy, in); d != "" {
				t.Errorf("the input record changed:\n%s", d)
			}
		})
	}
}

func clone(r cdc.Row) cdc.Row {
	if r == nil {
		return nil
	}
	out := cdc.Row{}
	for k, v := range r {
		out[k] = v
	}
	return out
}

func TestChainReusesSchemas(t *testing.T) {
	chain, err := Compile([]spec.Stage{{Rename: &spec.RenameStage{Fields: map[string]string{"name": "label"}}}})
	if err != nil {
		t.Fatal(err)
	}
	s := schema()
	a, _ := chain.Apply(context.Background(), cdc.Record{Op: cdc.OpCreate, Schema: s, After: cdc.Row{"id": int32(1)}})
	b, _ := chain.Apply(context.Background(), cdc.Record{Op: cdc.OpCreate, Schema: s, After: cdc.Row{"id": int32(2)}})
	if a[0].Schema != b[0].Schema {
		t.Error("the derived schema is rebuilt for every record")
	}
	if s.Columns[1].Name != "name" {
		t.Error("the input schema changed")
	}
}

func TestCompileErrors(t *testing.T) {
	_, err := Compile([]spec.Stage{{}, {Rename: &spec.RenameStage{Table: "a.b.c"}}})
	if err == nil || !strings.Contains(err.Error(), "stages[0]: ") || !strings.Contains(err.Error(), `stages[1].rename: table "a.b.c"`) {
		t.Fatalf("got %v", err)
	}
	if fes := spec.FieldErrors(err); len(fes) != 2 {
		t.Fatalf("field errors %v", fes)
	}
}
