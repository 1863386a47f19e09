package throwaway

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// EnvPGBin names the environment variable that overrides where the PostgreSQL
// server binaries (initdb, postgres) are looked for.
const EnvPGBin = "SLUICE_PG_BIN"

// EnvKeepTmp names the environment variable that, when set to anything, makes Stop
// keep the server's temporary directory (data and log) for inspection.
const EnvKeepTmp = "SLUICE_KEEP_TMP"

const installHint = "install the server with `apt-get install postgresql` (or run `make deps`)"

// pgRoot is where Debian and Ubuntu install the server binaries, one directory per
// major version.
const pgRoot = "/usr/lib/postgresql"

// findPGBin returns the directory holding initdb and postgres: $SLUICE_PG_BIN if set,
// else the newest /usr/lib/postgresql/<version>/bin, else the directory on PATH.
func findPGBin() (string, error) {
	if dir := os.Getenv(EnvPGBin); dir != "" {
		if err := hasServerBinaries(dir); err != nil {
			return "", fmt.Errorf("throwaway: %s=%s: %w; point it at a directory holding initdb and postgres, or unset it and %s",
				EnvPGBin, dir, err, installHint)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob(filepath.Join(pgRoot, "*", "bin"))
	sort.Slice(dirs, func(i, j int) bool { return versionLess(dirs[j], dirs[i]) })
	for _, dir := range dirs {
		if hasServerBinaries(dir) == nil {
			return dir, nil
		}
	}
	if path, err := exec.LookPath("postgres"); err == nil {
		if dir := filepath.Dir(path); hasServerBinaries(dir) == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("throwaway: PostgreSQL server binaries (initdb, postgres) not found in %s/<version>/bin or on PATH; %s, or set %s to their directory",
		pgRoot, installHint, EnvPGBin)
}

func hasServerBinaries(dir string) error {
	var errs []error
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("no %s in %s", name, dir))
		case fi.IsDir() || fi.Mode().Perm()&0o111 == 0:
			errs = append(errs, fmt.Errorf("%s is not executable", filepath.Join(dir, name)))
		}
	}
	return errors.Join(errs...)
}

// versionLess orders /usr/lib/postgresql/<version>/bin paths by version number
// ("9.6" < "15" < "17"); names that are not numbers sort first.
func versionLess(a, b string) bool {
	va, vb := versionOf(a), versionOf(b)
	for i := 0; i < len(va) && i < len(vb); i++ {
		if va[i] != vb[i] {
			return va[i] < vb[i]
		}
	}
	return len(va) < len(vb)
}

func versionOf(binDir string) []int {
	var v []int
	for _, part := range strings.Split(filepath.Base(filepath.Dir(binDir)), ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
}

// serverCredential returns the identity to run the server as: nil (the current user)
// unless running as root, which PostgreSQL refuses; then the postgres system user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("throwaway: running as root, so the server must run as the postgres system user, but looking it up failed: %w; %s, which creates it", err, installHint)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("throwaway: postgres user: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// checkReachable reports a directory above dir that the server's user cannot
// search, which would make initdb fail with a less helpful message.
func checkReachable(dir string, cred *syscall.Credential) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("throwaway: %w", err)
		}
		if !searchable(fi, cred) {
			return fmt.Errorf("throwaway: %s is not searchable by the postgres user (uid %d), which runs the server; use WithParentDir with a directory it can reach, or chmod o+x %s",
				d, cred.Uid, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func searchable(fi fs.FileInfo, cred *syscall.Credential) bool {
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		return true // cannot tell; let initdb report it
	case st.Uid == cred.Uid:
		return perm&0o100 != 0
	case st.Gid == cred.Gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// freeLoopbackPort asks the kernel for a free port. Another process may take it
// before the server binds it; the caller retries with a new port when that happens.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("throwaway: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// childEnv is the environment of initdb and postgres: ours without PG* variables,
// which could point them at another server or data directory.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}
