package transforms

import (
	"context"
	"fmt"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// rename renames the table and fields of records.
type rename struct {
	table  *cdc.TableID
	fields map[string]string
	cache  schemaCache
}

func newRename(cfg *spec.RenameStage) (*rename, error) {
	r := &rename{fields: cfg.Fields}
	if cfg.Table != "" {
		t, err := cdc.ParseTableID(cfg.Table, spec.DefaultSchema)
		if err != nil {
			return nil, err
		}
		r.table = &t
	}
	return r, nil
}

func (s *rename) name(n string) string {
	if to, ok := s.fields[n]; ok {
		return to
	}
	return n
}

func (s *rename) Apply(_ context.Context, r cdc.Record) ([]cdc.Record, error) {
	if s.table != nil {
		r.Table = *s.table
	}
	var err error
	if r.Schema, err = s.cache.get(r.Schema, s.schema(r.Table)); err != nil {
		return nil, err
	}
	if r.Key, err = s.row(r.Key); err != nil {
		return nil, err
	}
	if r.Before, err = s.row(r.Before); err != nil {
		return nil, err
	}
	if r.After, err = s.row(r.After); err != nil {
		return nil, err
	}
	return []cdc.Record{r}, nil
}

// schema derives the renamed schema of table.
func (s *rename) schema(table cdc.TableID) func(*cdc.TableSchema) (*cdc.TableSchema, error) {
	return func(in *cdc.TableSchema) (*cdc.TableSchema, error) {
		out := &cdc.TableSchema{Table: table, Columns: make([]cdc.Column, len(in.Columns))}
		seen := map[string]string{}
		for i, c := range in.Columns {
			c.Name = s.name(c.Name)
			if from, dup := seen[c.Name]; dup {
				return nil, fmt.Errorf("fields %q and %q both become %q", from, in.Columns[i].Name, c.Name)
			}
			seen[c.Name] = in.Columns[i].Name
			out.Columns[i] = c
		}
		for _, k := range in.Key {
			out.Key = append(out.Key, s.name(k))
		}
		return out, nil
	}
}

// row returns a copy of row with its fields renamed (nil stays nil).
func (s *rename) row(row cdc.Row) (cdc.Row, error) {
	if row == nil {
		return nil, nil
	}
	out := make(cdc.Row, len(row))
	for k, v := range row {
		n := s.name(k)
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("two fields become %q", n)
		}
		out[n] = v
	}
	return out, nil
}
