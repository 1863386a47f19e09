// Command sluice is the Sluice CDC platform: `sluice server` captures
// database changes into Kafka; `sluice demo` shows it end to end on
// throwaway databases.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

type logFlags struct {
	format, level string
}

func (l *logFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&l.format, "log-format", "text", "log format: text or json")
	cmd.PersistentFlags().StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
}

func (l *logFlags) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(l.format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", l.format)
}

func newRoot() *cobra.Command {
	lf := &logFlags{}
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Streaming change-data-capture through Kafka",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	lf.register(root)
	root.AddCommand(newServerCmd(lf), newDemoCmd(lf), newTestCmd())
	root.AddCommand(clientCommands()...)
	return root
}
