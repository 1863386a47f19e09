package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/transforms/stagetest"
)

// Exit codes of `sluice test`.
const (
	exitTestFailed = 1 // a test failed
	exitSpecError  = 2 // a spec does not parse, or its stages do not compile
)

// exitError asks main to exit with a code, having printed the details.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// ExitCode is the process exit code.
func (e *exitError) ExitCode() int { return e.code }

func newTestCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "test FILE|DIR...",
		Short: "Run the stage tests of pipeline specs (no database or broker needed)",
		Long: `Runs the tests: block of every Pipeline in the given spec files (a directory:
its *.yaml, *.yml and *.json files): each test's input record goes through the
pipeline's stages, and the output is compared with the expected records.

Prints PASS or FAIL per test, with the differences for a failure. Exits 1 when
a test fails, 2 when a spec does not parse or its stages do not compile (with
the field path of every problem). Only the stages run: the Source a pipeline
names need not be in the files. now() gives 2000-01-01T00:00:00Z in tests.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTests(cmd.Context(), cmd.OutOrStdout(), args)
		},
	}
}

// runTests runs the tests of the spec files under paths, printing to w.
func runTests(ctx context.Context, w io.Writer, paths []string) error {
	var files []string
	specErrs := 0
	for _, p := range paths {
		found, err := specFiles(p)
		if err != nil {
			fmt.Fprintf(w, "ERROR %v\n", err)
			specErrs++
		}
		files = append(files, found...)
	}
	passed, failed, untested := 0, 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(w, "ERROR %v\n", err)
			specErrs++
			continue
		}
		specs, err := spec.Parse(data, f)
		if err != nil {
			fmt.Fprintf(w, "ERROR %s:\n%s\n", f, indent(err.Error()))
			specErrs++
			continue
		}
		for _, s := range specs {
			p, ok := s.(*spec.Pipeline)
			if !ok {
				continue
			}
			results, err := stagetest.Run(ctx, p)
			if err != nil {
				fmt.Fprintf(w, "ERROR %s: pipeline %q:\n%s\n", f, p.Name, indent(err.Error()))
				specErrs++
				continue
			}
			if len(results) == 0 {
				untested++
				fmt.Fprintf(w, "---- %s: pipeline %q has no tests\n", f, p.Name)
				continue
			}
			fmt.Fprintf(w, "---- %s: pipeline %q\n", f, p.Name)
			for _, r := range results {
				fmt.Fprint(w, r.Report())
				if r.Passed {
					passed++
				} else {
					failed++
				}
			}
		}
	}
	summary := fmt.Sprintf("%d passed, %d failed, %d pipeline(s) without tests, %d spec error(s)", passed, failed, untested, specErrs)
	fmt.Fprintln(w, summary)
	switch {
	case specErrs > 0:
		return &exitError{exitSpecError, "spec errors: " + summary}
	case failed > 0:
		return &exitError{exitTestFailed, "tests failed: " + summary}
	}
	return nil
}

// specFiles returns path, or the spec files of the directory path (as
// spec.ParseFiles reads them).
func specFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no *.yaml, *.yml or *.json files", path)
	}
	return files, nil
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
