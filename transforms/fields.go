package transforms

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// schemaCache remembers the schema a stage derived from each input schema.
// Decoders share one *TableSchema between the records of a table, so the
// cache turns per-record schema rewriting into a map lookup. It is bounded:
// when full it starts again.
type schemaCache struct {
	mu sync.Mutex
	m  map[*cdc.TableSchema]*cdc.TableSchema
}

const maxCachedSchemas = 1024

func (c *schemaCache) get(in *cdc.TableSchema, derive func(*cdc.TableSchema) (*cdc.TableSchema, error)) (*cdc.TableSchema, error) {
	if in == nil {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if out, ok := c.m[in]; ok {
		return out, nil
	}
	out, err := derive(in)
	if err != nil {
		return nil, err
	}
	if c.m == nil || len(c.m) >= maxCachedSchemas {
		c.m = map[*cdc.TableSchema]*cdc.TableSchema{}
	}
	c.m[in] = out
	return out, nil
}

// fieldFilter drops the listed fields (keep false) or every field but the
// listed ones and the key (keep true).
type fieldFilter struct {
	fields map[string]bool
	keep   bool
	cache  schemaCache
}

func newFieldFilter(fields []string, keep bool) *fieldFilter {
	f := &fieldFilter{fields: map[string]bool{}, keep: keep}
	for _, n := range fields {
		f.fields[n] = true
	}
	return f
}

// removes reports whether the filter removes column name of a table whose
// key is key.
func (f *fieldFilter) removes(name string, key []string) bool {
	if f.keep {
		return !f.fields[name] && !slices.Contains(key, name)
	}
	return f.fields[name]
}

func (f *fieldFilter) Apply(_ context.Context, r cdc.Record) ([]cdc.Record, error) {
	key := keyNames(r)
	if !f.keep {
		for _, k := range key {
			if f.fields[k] {
				return nil, fmt.Errorf("cannot drop %q: it is part of the key of %s", k, r.Table)
			}
		}
	}
	var err error
	if r.Schema, err = f.cache.get(r.Schema, func(s *cdc.TableSchema) (*cdc.TableSchema, error) {
		out := &cdc.TableSchema{Table: s.Table, Key: s.Key}
		for _, c := range s.Columns {
			if !f.removes(c.Name, s.Key) {
				out.Columns = append(out.Columns, c)
			}
		}
		return out, nil
	}); err != nil {
		return nil, err
	}
	filter := func(row cdc.Row) cdc.Row {
		if row == nil {
			return nil
		}
		out := make(cdc.Row, len(row))
		for k, v := range row {
			if !f.removes(k, key) {
				out[k] = v
			}
		}
		return out
	}
	r.Before, r.After = filter(r.Before), filter(r.After)
	r.Key = maps.Clone(r.Key)
	return []cdc.Record{r}, nil
}

// keyNames returns the key columns of r: its schema's, or its key row's.
func keyNames(r cdc.Record) []string {
	if r.Schema != nil && len(r.Schema.Key) > 0 {
		return r.Schema.Key
	}
	return slices.Sorted(maps.Keys(r.Key))
}
