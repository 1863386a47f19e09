package transforms

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// unwrap turns a change into a plain row, as Debezium's
// ExtractNewRecordState does: inserts, reads and updates keep only their
// after image; deletes are kept, dropped, or rewritten into an upsert of
// the old row with __deleted = true; metadata can be added as "__" fields.
type unwrap struct {
	del   string
	add   []string
	cache schemaCache
}

func newUnwrap(cfg *spec.UnwrapStage) Stage {
	del := cfg.Delete
	if del == "" {
		del = "keep"
	}
	return &unwrap{del: del, add: cfg.Add}
}

// unwrapField is the field name of added metadata: "__op",
// "__source_ts_ms".
func unwrapField(name string) string { return "__" + strings.ReplaceAll(name, ".", "_") }

func (u *unwrap) Apply(_ context.Context, r cdc.Record) ([]cdc.Record, error) {
	if r.Op == cdc.OpTruncate {
		return []cdc.Record{r}, nil
	}
	var err error
	if r.Schema, err = u.cache.get(r.Schema, u.schema); err != nil {
		return nil, err
	}
	meta := u.metadata(&r)
	if r.Op != cdc.OpDelete {
		r.After = withFields(r.After, meta)
		r.Before = nil
		if u.del == "rewrite" {
			r.After["__deleted"] = false
		}
		return []cdc.Record{r}, nil
	}
	switch u.del {
	case "drop":
		return nil, nil
	case "rewrite":
		row := withFields(r.Before, meta)
		for k, v := range r.Key {
			row[k] = v
		}
		row["__deleted"] = true
		r.Op, r.After, r.Before = cdc.OpUpdate, row, nil
	default:
		if r.Before != nil {
			r.Before = withFields(r.Before, meta)
		}
	}
	return []cdc.Record{r}, nil
}

// withFields returns a copy of row with fields added.
func withFields(row cdc.Row, fields cdc.Row) cdc.Row {
	out := make(cdc.Row, len(row)+len(fields)+1)
	maps.Copy(out, row)
	maps.Copy(out, fields)
	return out
}

func (u *unwrap) metadata(r *cdc.Record) cdc.Row {
	m := make(cdc.Row, len(u.add))
	for _, a := range u.add {
		var v any
		switch a {
		case "op":
			v = r.Op.String()
		case "table":
			v = r.Table.Name
		case "schema":
			v = r.Table.Schema
		case "db":
			v = r.Source.DB
		case "lsn":
			if n, err := toInt(r.Source.Extra["lsn"], 64); err == nil {
				v = n
			}
		case "tx_id":
			v = r.TxID
		case "source.ts_ms":
			if !r.CommitTime.IsZero() {
				v = r.CommitTime.UnixMilli()
			}
		case "snapshot":
			v = r.Source.Snapshot
		}
		m[unwrapField(a)] = v
	}
	return m
}

func (u *unwrap) schema(in *cdc.TableSchema) (*cdc.TableSchema, error) {
	out := &cdc.TableSchema{Table: in.Table, Key: in.Key, Columns: slices.Clone(in.Columns)}
	put := func(name string, kind cdc.Kind) {
		c := fresh(kind, 0)
		c.Name = name
		if i := slices.IndexFunc(out.Columns, func(c cdc.Column) bool { return c.Name == name }); i >= 0 {
			out.Columns[i] = c
		} else {
			out.Columns = append(out.Columns, c)
		}
	}
	for _, a := range u.add {
		kind := cdc.KindString
		if a == "lsn" || a == "source.ts_ms" {
			kind = cdc.KindInt64
		}
		put(unwrapField(a), kind)
	}
	if u.del == "rewrite" {
		put("__deleted", cdc.KindBool)
	}
	return out, nil
}
