package stagetest

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// TestDocs runs the examples of docs/stages.md that carry tests: a yaml
// block that starts with stages: is wrapped in a pipeline.
func TestDocs(t *testing.T) {
	t.Setenv("DOCS_SALT", "doc-salt")
	data, err := os.ReadFile("../../docs/stages.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	n := 0
	for _, b := range blocks {
		text := b[1]
		if !strings.Contains(text, "\ntests:") {
			continue
		}
		if strings.HasPrefix(text, "stages:") {
			text = "kind: Pipeline\nname: doc\nfrom: {source: s, tables: [public.t]}\nsink: {postgres: {dsn: x}}\n" + text
		}
		specs, err := spec.Parse([]byte(text), "docs/stages.md")
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		for _, s := range specs {
			if p, ok := s.(*spec.Pipeline); ok {
				n++
				runPipeline(t, "docs", p)
			}
		}
	}
	if n < 14 {
		t.Errorf("only %d examples with tests", n)
	}
}
