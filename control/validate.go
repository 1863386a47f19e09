package control

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/transforms"
)

// validation is the answer of the validate action.
type validation struct {
	Valid    bool           `json:"valid"`
	Problems []fieldProblem `json:"problems"`
}

// validate dry-runs the stored spec, or the spec in the body, against the
// live databases: the source's tables exist and have keys; a pipeline's
// destination tables and columns exist (unless it creates them).
func (s *Server) validate(w http.ResponseWriter, r *http.Request, kind spec.Kind, h Head) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var sp spec.Spec
	if strings.TrimSpace(string(body)) != "" {
		file := "body.yaml"
		if strings.Contains(r.Header.Get("Content-Type"), "json") {
			file = "body.json"
		}
		specs, err := spec.Parse(body, file)
		if err != nil {
			writeJSON(w, http.StatusOK, validation{Problems: specProblems(err)})
			return
		}
		if len(specs) != 1 || specs[0].Kind() != kind || specs[0].Ident() != h.Name {
			problem(w, http.StatusBadRequest, "invalid spec", fmt.Sprintf("the body must hold one %s named %q", kind, h.Name), nil)
			return
		}
		sp = specs[0]
	} else {
		_, v, _ := s.Store.Get(kind, h.Name)
		var err error
		if sp, err = parseVersion(v); err != nil {
			writeJSON(w, http.StatusOK, validation{Problems: specProblems(err)})
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	var probs []fieldProblem
	switch v := sp.(type) {
	case *spec.Source:
		probs = checkSourceTables(ctx, v, nil)
	case *spec.Pipeline:
		probs = s.checkPipeline(v)
		if len(probs) == 0 {
			probs = s.checkPipelineLive(ctx, v)
		}
	}
	writeJSON(w, http.StatusOK, validation{Valid: len(probs) == 0, Problems: append([]fieldProblem{}, probs...)})
}

// tableInfo is a table's columns and key in a live database.
type tableInfo struct {
	cols []string
	key  []string
}

// checkSourceTables connects to the source and checks its tables; infos,
// when not nil, receives what it found.
func checkSourceTables(ctx context.Context, src *spec.Source, infos map[cdc.TableID]tableInfo) []fieldProblem {
	res, err := src.Resolved()
	if err != nil {
		return []fieldProblem{{Path: "postgres.dsn", Message: err.Error()}}
	}
	conn, err := pgx.Connect(ctx, res.Postgres.DSN)
	if err != nil {
		return []fieldProblem{{Path: "postgres.dsn", Message: "cannot connect: " + spec.Redact(err.Error())}}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var probs []fieldProblem
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err == nil && level != "logical" {
		probs = append(probs, fieldProblem{Path: "postgres", Message: "wal_level is " + level + "; capture needs logical"})
	}
	tables, err := src.Postgres.TableIDs()
	if err != nil {
		return append(probs, fieldProblem{Path: "postgres.tables", Message: err.Error()})
	}
	for i, t := range tables {
		ti, err := liveTable(ctx, conn, t)
		path := fmt.Sprintf("postgres.tables[%d]", i)
		switch {
		case err != nil:
			probs = append(probs, fieldProblem{Path: path, Message: err.Error()})
		case len(ti.key) == 0:
			probs = append(probs, fieldProblem{Path: path, Message: fmt.Sprintf("table %s has no primary key", t)})
		}
		if infos != nil && err == nil {
			infos[t] = ti
		}
	}
	return probs
}

// liveTable reads a table's columns and primary key from the catalog.
func liveTable(ctx context.Context, conn *pgx.Conn, t cdc.TableID) (tableInfo, error) {
	var ti tableInfo
	rows, err := conn.Query(ctx, `SELECT a.attname::text, coalesce(i.indisprimary, false)
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY (i.indkey)
		WHERE n.nspname = $1 AND c.relname = $2 ORDER BY a.attnum`, t.Schema, t.Name)
	if err != nil {
		return ti, fmt.Errorf("read %s: %w", t, err)
	}
	for rows.Next() {
		var name string
		var pk bool
		if err := rows.Scan(&name, &pk); err != nil {
			return ti, err
		}
		ti.cols = append(ti.cols, name)
		if pk {
			ti.key = append(ti.key, name)
		}
	}
	if err := rows.Err(); err != nil {
		return ti, err
	}
	if len(ti.cols) == 0 {
		return ti, fmt.Errorf("table %s does not exist", t)
	}
	return ti, nil
}

// checkPipelineLive checks a pipeline's source tables and, through its
// stages, the destination tables and columns they lead to.
func (s *Server) checkPipelineLive(ctx context.Context, p *spec.Pipeline) []fieldProblem {
	src, err := s.source(p.From.Source)
	if err != nil {
		return []fieldProblem{{Path: "from.source", Message: err.Error()}}
	}
	infos := map[cdc.TableID]tableInfo{}
	var probs []fieldProblem
	for _, sp := range checkSourceTables(ctx, src, infos) {
		sp.Path = "source " + src.Name + ": " + sp.Path
		probs = append(probs, sp)
	}
	chain, err := transforms.Compile(p.Stages)
	if err != nil {
		return append(probs, specProblems(err)...)
	}
	res, err := p.Resolved()
	if err != nil {
		return append(probs, fieldProblem{Path: "sink.postgres.dsn", Message: err.Error()})
	}
	dst, err := pgx.Connect(ctx, res.Sink.Postgres.DSN)
	if err != nil {
		return append(probs, fieldProblem{Path: "sink.postgres.dsn", Message: "cannot connect: " + spec.Redact(err.Error())})
	}
	defer dst.Close(context.WithoutCancel(ctx))
	tables, err := p.SourceTables(src)
	if err != nil {
		return append(probs, fieldProblem{Path: "from.tables", Message: err.Error()})
	}
	for _, t := range tables {
		ti, ok := infos[t]
		if !ok {
			continue
		}
		// A record holding every column, its value the column's name.
		r := cdc.Record{Table: t, Op: cdc.OpRead, Key: cdc.Row{}, After: cdc.Row{},
			Schema: &cdc.TableSchema{Table: t, Key: ti.key}}
		for _, c := range ti.cols {
			r.After[c] = c
			r.Schema.Columns = append(r.Schema.Columns, cdc.Column{Name: c, Kind: cdc.KindString, Nullable: true})
		}
		for _, k := range ti.key {
			r.Key[k] = k
		}
		outs, err := chain.Apply(ctx, r)
		if err != nil {
			// Stages that compute values (casts, expressions) may reject
			// a record of column names; only real records can tell.
			continue
		}
		for _, o := range outs {
			if p.Sink.CreateTables {
				continue
			}
			di, err := liveTable(ctx, dst, o.Table)
			if err != nil {
				probs = append(probs, fieldProblem{Path: "sink", Message: fmt.Sprintf("destination %v (create it, or set create_tables: true)", err)})
				continue
			}
			have := map[string]bool{}
			for _, c := range di.cols {
				have[c] = true
			}
			for c := range o.After {
				if !have[c] {
					probs = append(probs, fieldProblem{Path: "stages",
						Message: fmt.Sprintf("destination table %s has no column %q (from %s)", o.Table, c, t)})
				}
			}
		}
	}
	return probs
}
