package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-cdc/sluice/internal/throwaway"
)

// env is what every scenario shares: a work directory, the sluice binary and
// one throwaway PostgreSQL server (each scenario uses its own databases),
// plus a second one that the apply scenarios write to.
type env struct {
	work     string // temporary directory: binary, sluice data dirs, logs
	bin      string // sluice binary
	logLevel string // sluice --log-level
	pg       *throwaway.Postgres
	// dst is the destination server of the apply scenarios, started on
	// first use. A source and its destination are different servers in
	// production; on one server, the source's walsender would decode all
	// the WAL the sink writes (logical decoding reads the whole cluster's
	// WAL before it filters by database), a third of a core at 120k
	// rows/s that the bare loads, run without Sluice, would not pay.
	dst *throwaway.Postgres
}

// destination returns the destination server of the apply scenarios,
// starting it the first time (not part of any measurement).
func (e *env) destination(ctx context.Context) (*throwaway.Postgres, error) {
	if e.dst != nil {
		return e.dst, nil
	}
	progress("starting the destination PostgreSQL")
	pg, err := throwaway.StartPostgres(ctx)
	if err != nil {
		return nil, fmt.Errorf("start the destination PostgreSQL: %w", err)
	}
	e.dst = pg
	return pg, nil
}

// newEnv builds sluice (unless -sluice names a binary) and starts PostgreSQL.
// Neither is part of any measurement.
func newEnv(ctx context.Context, o options) (*env, error) {
	work, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	e := &env{work: work, bin: o.sluiceBin, logLevel: o.sluiceLogLevel}
	if e.bin == "" {
		e.bin = filepath.Join(work, "sluice")
		progress("building sluice")
		if err := buildSluice(ctx, e.bin); err != nil {
			_ = os.RemoveAll(work)
			return nil, err
		}
	}
	progress("starting PostgreSQL")
	e.pg, err = throwaway.StartPostgres(ctx)
	if err != nil {
		_ = os.RemoveAll(work)
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	return e, nil
}

// buildSluice builds ./cmd/sluice of the module this command runs in.
func buildSluice(ctx context.Context, out string) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		return errors.New("run bench from inside the sluice module (go run ./bench)")
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/sluice")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/sluice: %w\n%s", err, b)
	}
	return nil
}

// close stops the PostgreSQL servers and removes the work directory (both kept when
// SLUICE_KEEP_TMP is set). It runs on a fresh context: teardown must happen
// after Ctrl-C too.
func (e *env) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.pg.Stop(ctx)
	if e.dst != nil {
		err = errors.Join(err, e.dst.Stop(ctx))
	}
	if os.Getenv(throwaway.EnvKeepTmp) != "" {
		progress("%s is set, keeping %s", throwaway.EnvKeepTmp, e.work)
		return err
	}
	return errors.Join(err, os.RemoveAll(e.work))
}
