package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSources(t *testing.T) {
	const src = "kind: Source\nname: a\npostgres:\n  dsn: ${env:X}\n  tables: [t]\n"
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
		{"pipeline not runnable yet", map[string]string{"a.yaml": src + "---\nkind: Pipeline\nname: p\nfrom: {source: a}\n"}, "runs sources only", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := loadSources([]string{dir})
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want one containing %q", err, tt.want)
				}
				return
			}
			if err != nil || len(got) != tt.n {
				t.Fatalf("got %d sources, err %v; want %d", len(got), err, tt.n)
			}
		})
	}
}
