package throwaway

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// PGOption configures StartPostgres.
type PGOption func(*pgConfig)

type pgConfig struct {
	parentDir    string
	settings     []setting
	startTimeout time.Duration
	pickPort     func() (int, error)
}

type setting struct{ key, value string }

func defaultPGConfig() pgConfig {
	return pgConfig{startTimeout: 60 * time.Second, pickPort: freeLoopbackPort}
}

// WithParentDir creates the server's temporary directory inside dir instead of the
// system temporary directory. When running as root, every directory above it must be
// searchable by the postgres system user.
func WithParentDir(dir string) PGOption {
	return func(c *pgConfig) { c.parentDir = dir }
}

// WithSetting passes -c key=value to the server, after the defaults, so it overrides
// them: WithSetting("wal_level", "replica") starts a server logical replication
// cannot use. It may be given several times.
func WithSetting(key, value string) PGOption {
	return func(c *pgConfig) { c.settings = append(c.settings, setting{key, value}) }
}

// WithStartTimeout bounds how long a start (initdb excluded) may wait for the server
// to accept connections, port retries included. The default is one minute.
func WithStartTimeout(d time.Duration) PGOption {
	return func(c *pgConfig) { c.startTimeout = d }
}

// withPortPicker replaces the choice of a free loopback port; tests use it to
// provoke a port clash.
func withPortPicker(pick func() (int, error)) PGOption {
	return func(c *pgConfig) { c.pickPort = pick }
}

// managedSettings are set by the package itself; overriding them would make DSN lie.
var managedSettings = map[string]bool{
	"port": true, "listen_addresses": true, "unix_socket_directories": true,
}

func (c *pgConfig) validate() error {
	var errs []error
	if c.startTimeout <= 0 {
		errs = append(errs, fmt.Errorf("start timeout: must be positive, got %v", c.startTimeout))
	}
	for i, s := range c.settings {
		switch {
		case s.key == "" || strings.ContainsAny(s.key, "= \t\n"):
			errs = append(errs, fmt.Errorf("settings[%d]: invalid key %q", i, s.key))
		case managedSettings[strings.ToLower(s.key)]:
			errs = append(errs, fmt.Errorf("settings[%d]: %s is managed by throwaway", i, s.key))
		}
	}
	return errors.Join(errs...)
}
