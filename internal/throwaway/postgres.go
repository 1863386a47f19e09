// Package throwaway starts disposable database servers from the binaries installed on
// the machine: for integration tests (one server per test package, started in
// TestMain, one database per test), for `sluice demo` and for the benchmark harness.
//
// A server lives in its own temporary directory, listens on a free loopback port,
// trusts every connection, and trades durability for speed (fsync off). When the
// calling process runs as root, as CI does, the server runs as the postgres system
// user, because PostgreSQL refuses to run as root.
//
// A missing server binary is an error that says how to install it, never a reason to
// skip: tests must fail when their environment is incomplete.
package throwaway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway PostgreSQL server with wal_level=logical. Its methods are
// safe for concurrent use; Start, Stop and Kill are serialised.
type Postgres struct {
	binDir       string
	dir          string
	cred         *syscall.Credential // nil: run as the current user
	args         []string            // postgres arguments after -D and -p
	startTimeout time.Duration
	pickPort     func() (int, error)

	mu      sync.Mutex
	port    int
	proc    *process // nil while the server is not running
	removed bool     // Stop removed (or gave up) the directory; Start is over
}

// StartPostgres creates a data directory with initdb in a new temporary directory and
// starts a server on it, returning once it accepts connections. On failure, the
// error includes the tail of the server log and nothing is left running or on disk.
func StartPostgres(ctx context.Context, opts ...PGOption) (*Postgres, error) {
	cfg := defaultPGConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("throwaway: options: %w", err)
	}
	binDir, err := findPGBin()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	parent, err := filepath.Abs(cmp.Or(cfg.parentDir, os.TempDir())) // the server runs in its dir
	if err != nil {
		return nil, fmt.Errorf("throwaway: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "sluice-pg-")
	if err != nil {
		return nil, fmt.Errorf("throwaway: %w", err)
	}
	p := &Postgres{
		binDir: binDir, dir: dir, cred: cred,
		startTimeout: cfg.startTimeout, pickPort: cfg.pickPort,
		args: serverArgs(dir, cfg.settings),
	}
	if err := p.create(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func serverArgs(dir string, settings []setting) []string {
	args := []string{
		"-c", "listen_addresses=127.0.0.1", "-k", dir,
		"-c", "wal_level=logical",
		"-c", "max_replication_slots=20",
		"-c", "max_wal_senders=20",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
	}
	for _, s := range settings {
		args = append(args, "-c", s.key+"="+s.value)
	}
	return args
}

// create runs initdb and starts the server on the first free port it can bind.
func (p *Postgres) create(ctx context.Context) error {
	if p.cred != nil {
		if err := checkReachable(p.dir, p.cred); err != nil {
			return err
		}
		if err := os.Chown(p.dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return fmt.Errorf("throwaway: hand %s to the postgres user: %w", p.dir, err)
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(p.binDir, "initdb"),
		"-D", p.dataDir(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C",
		"--no-sync") // fsync is off in the server too; syncing here only costs time
	initdb.Dir, initdb.Env = p.dir, childEnv()
	initdb.SysProcAttr = sysProcAttr(p.cred, false)
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("throwaway: initdb in %s: %w\n%s", p.dir, err, tail(out, 30))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startLocked(ctx, true)
}

// DSN returns the URL of database db on this server, as the postgres superuser.
func (p *Postgres) DSN(db string) string { return dsn(p.Port(), db) }

func dsn(port int, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", port, url.PathEscape(db))
}

// Port returns the loopback TCP port the server listens on. It stays the same across
// Kill and Start.
func (p *Postgres) Port() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.port
}

// Dir returns the server's temporary directory: the data directory (data/), the
// server log (postgres.log) and the Unix socket.
func (p *Postgres) Dir() string { return p.dir }

// BinDir returns the directory of the server binaries in use (initdb, postgres, and
// usually pg_dump, pgbench and psql beside them).
func (p *Postgres) BinDir() string { return p.binDir }

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }
func (p *Postgres) logPath() string { return filepath.Join(p.dir, "postgres.log") }

// CreateDatabase creates database name and returns its DSN.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (dsn string, err error) {
	if name == "" {
		return "", errors.New("throwaway: create database: empty name")
	}
	if err := p.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("throwaway: create database %s: %w", name, err)
	}
	return p.DSN(name), nil
}

// Exec runs sql, which may hold several statements without parameters, in database db
// on a connection of its own.
func (p *Postgres) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, p.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// Start starts the server again on the same data directory and port, after Kill. The
// port may have been taken meanwhile; then Start fails.
func (p *Postgres) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.removed:
		return errors.New("throwaway: start: the server was stopped and its directory removed")
	case p.proc != nil:
		return errors.New("throwaway: start: already running")
	}
	return p.startLocked(ctx, false)
}

// Kill ends the server and every process of it at once with SIGKILL, as a crash
// would, and returns once the server process is gone. Start brings it back. Commits
// are asynchronous on a throwaway server (synchronous_commit=off), so the last ones
// before a Kill may be lost: a crash test that needs them must commit with
// synchronous_commit=on (per session, or WithSetting).
func (p *Postgres) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		p.proc.kill()
		p.proc = nil
	}
}

// Stop shuts the server down (fast shutdown: sessions are ended, nothing is waited
// for), kills it if it has not exited within ten seconds or when ctx ends, and removes
// its directory unless SLUICE_KEEP_TMP is set. Calling it again does nothing.
func (p *Postgres) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		p.proc.stop(ctx, 10*time.Second)
		p.proc = nil
	}
	if p.removed {
		return nil
	}
	p.removed = true
	if os.Getenv(EnvKeepTmp) != "" {
		fmt.Fprintf(os.Stderr, "throwaway: %s is set, keeping %s\n", EnvKeepTmp, p.dir)
		return nil
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("throwaway: remove %s: %w", p.dir, err)
	}
	return nil
}

func tail(b []byte, lines int) string {
	end := len(b)
	for end > 0 && b[end-1] == '\n' {
		end--
	}
	start := end
	for n := 0; start > 0; start-- {
		if b[start-1] == '\n' {
			if n++; n == lines {
				break
			}
		}
	}
	return string(b[start:end])
}
