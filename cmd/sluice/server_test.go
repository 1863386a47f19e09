package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-cdc/sluice/pipelines/examples"
)

func TestLoadSpecs(t *testing.T) {
	const src = "kind: Source\nname: a\npostgres:\n  dsn: ${env:X}\n  tables: [t]\n"
	const pipe = "kind: Pipeline\nname: p\nsink: {postgres: {dsn: x}}\nstages: [{drop: [x]}]\nfrom:\n  source: a\n"
	tests := []struct {
		name  string
		files map[string]string
		want  string // error substring; "" = ok
		n     int
	}{
		{"one source", map[string]string{"a.yaml": src}, "", 1},
		{"two files", map[string]string{"a.yaml": src, "b.yml": strings.Replace(src, "name: a", "name: b", 1)}, "", 2},
		{"same name twice", map[string]string{"a.yaml": src, "b.yaml": src}, `"a"`, 0},
		{"bad field path", map[string]string{"a.yaml": src + "  bogus: 1\n"}, "postgres.bogus", 0},
		{"source and pipeline", map[string]string{"a.yaml": src + "---\n" + pipe}, "", 2},
		{"pipeline of an unknown source", map[string]string{"a.yaml": src + "---\n" + strings.Replace(pipe, "source: a", "source: b", 1)},
			`pipeline "p": from.source: no source named "b"`, 0},
		{"pipeline of a table the source does not capture", map[string]string{"a.yaml": src + "---\n" + pipe + "  tables: [u]\n"},
			`pipeline "p": from.tables[0]: source "a" does not capture public.u`, 0},
		{"the examples", map[string]string{"e.yaml": examplesYAML(t)}, "", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			sources, pipelines, err := loadSpecs([]string{dir})
			got := len(sources) + len(pipelines)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want one containing %q", err, tt.want)
				}
				return
			}
			if err != nil || got != tt.n {
				t.Fatalf("got %d specs, err %v; want %d", got, err, tt.n)
			}
		})
	}
}

func examplesYAML(t *testing.T) string {
	b, err := examples.FS.ReadFile("elmis-to-v3.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServerRejectsUnknownCompression checks that a codec Sluice does not
// offer stops the server before it starts anything, naming the flag.
func TestServerRejectsUnknownCompression(t *testing.T) {
	cmd := newServerCmd(&logFlags{format: "text", level: "error"})
	cmd.SetArgs([]string{"--compression", "gzip", "--data-dir", t.TempDir(), "--kafka-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), `--compression: "gzip" is not one of zstd, lz4, snappy, none`) {
		t.Fatalf("server with --compression gzip: %v", err)
	}
}
