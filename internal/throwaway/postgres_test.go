package throwaway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pg is the server shared by the tests of this package that do not stop it.
var pg *Postgres

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var err error
	pg, err = StartPostgres(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := pg.Stop(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func queryString(t *testing.T, ctx context.Context, dsn, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestServerSettings(t *testing.T) {
	ctx := testContext(t)
	for setting, want := range map[string]string{
		"wal_level":             "logical",
		"max_replication_slots": "20",
		"listen_addresses":      "127.0.0.1",
		"fsync":                 "off",
		"port":                  fmt.Sprint(pg.Port()),
		"server_encoding":       "UTF8",
	} {
		if got := queryString(t, ctx, pg.DSN("postgres"), "SHOW "+setting); got != want {
			t.Errorf("SHOW %s = %q, want %q", setting, got, want)
		}
	}
}

func TestCreateDatabase(t *testing.T) {
	ctx := testContext(t)
	dsn, err := pg.CreateDatabase(ctx, "Create-Database")
	if err != nil {
		t.Fatal(err)
	}
	if want := pg.DSN("Create-Database"); dsn != want {
		t.Errorf("dsn = %q, want %q", dsn, want)
	}
	if err := pg.Exec(ctx, "Create-Database", "CREATE TABLE t (v text); INSERT INTO t VALUES ('x')"); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, ctx, dsn, "SELECT current_database() || ':' || v FROM t"); got != "Create-Database:x" {
		t.Errorf("got %q", got)
	}
	if _, err := pg.CreateDatabase(ctx, "Create-Database"); err == nil {
		t.Error("creating the database twice succeeded")
	}
}

// TestKillRestart also covers a port clash at start and an overridden setting.
func TestKillRestart(t *testing.T) {
	ctx := testContext(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	pickTakenFirst := func() (int, error) {
		if picks++; picks == 1 {
			return takenPort, nil
		}
		return freeLoopbackPort()
	}

	p, err := StartPostgres(ctx, WithSetting("wal_level", "replica"), withPortPicker(pickTakenFirst))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(ctx)
	if p.Port() == takenPort || picks != 2 {
		t.Errorf("port %d after %d picks; want a retry away from the taken port %d", p.Port(), picks, takenPort)
	}
	if got := queryString(t, ctx, p.DSN("postgres"), "SHOW wal_level"); got != "replica" {
		t.Errorf("wal_level = %q, want replica", got)
	}
	// Commits are asynchronous on a throwaway server; this one must survive the crash.
	if err := p.Exec(ctx, "postgres", "SET synchronous_commit = on; CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}

	port := p.Port()
	p.Kill()
	if err := p.Exec(ctx, "postgres", "SELECT 1"); err == nil {
		t.Fatal("server answers after Kill")
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Port() != port {
		t.Errorf("port changed across restart: %d -> %d", port, p.Port())
	}
	if got := queryString(t, ctx, p.DSN("postgres"), "SELECT v FROM t"); got != "kept" {
		t.Errorf("after restart got %q, want kept", got)
	}
	if err := p.Start(ctx); err == nil {
		t.Error("Start of a running server succeeded")
	}

	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.Dir()); os.Getenv(EnvKeepTmp) == "" && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop left %s behind (stat: %v)", p.Dir(), err)
	}
	if err := p.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestMissingBinaries(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-bin")
	t.Setenv(EnvPGBin, missing)
	_, err := StartPostgres(testContext(t))
	if err == nil {
		t.Fatal("StartPostgres succeeded without binaries")
	}
	for _, want := range []string{missing, "initdb", "postgres", EnvPGBin, "apt-get install postgresql", "make deps"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestInvalidOptions(t *testing.T) {
	_, err := StartPostgres(testContext(t),
		WithSetting("port", "1"), WithSetting("a=b", "c"), WithStartTimeout(0))
	if err == nil {
		t.Fatal("StartPostgres accepted invalid options")
	}
	for _, want := range []string{"settings[0]: port is managed", "settings[1]: invalid key", "start timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestNewestVersionFirst(t *testing.T) {
	dirs := []string{"/p/15/bin", "/p/9.6/bin", "/p/devel/bin", "/p/17/bin", "/p/9.10/bin"}
	slices.SortFunc(dirs, func(a, b string) int {
		switch {
		case versionLess(b, a):
			return -1
		case versionLess(a, b):
			return 1
		}
		return 0
	})
	want := []string{"/p/17/bin", "/p/15/bin", "/p/9.10/bin", "/p/9.6/bin", "/p/devel/bin"}
	if !slices.Equal(dirs, want) {
		t.Errorf("got %v, want %v", dirs, want)
	}
}

func TestTail(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
	} {
		if got := tail([]byte(c.in), c.n); got != c.want {
			t.Errorf("tail(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestStartFailureReportsLog(t *testing.T) {
	// Not t.TempDir: its parent is private to root, which the postgres user cannot search.
	parent, err := os.MkdirTemp("", "throwaway-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = StartPostgres(testContext(t), WithParentDir(parent), WithSetting("wal_level", "bogus"))
	if err == nil {
		t.Fatal("StartPostgres succeeded with wal_level=bogus")
	}
	if !strings.Contains(err.Error(), `invalid value for parameter "wal_level"`) {
		t.Errorf("error does not quote the server log:\n%v", err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("failed start left %v in %s", left, parent)
	}
}
