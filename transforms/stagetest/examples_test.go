package stagetest

import (
	"io/fs"
	"path"
	"testing"

	"github.com/sluice-cdc/sluice/pipelines/examples"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// TestExamples runs the tests of every example pipeline: each must have
// some, and all must pass.
func TestExamples(t *testing.T) {
	files, err := fs.Glob(examples.FS, "*.y*ml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example specs: %v", err)
	}
	for _, f := range files {
		data, err := examples.FS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		specs, err := spec.Parse(data, path.Join("pipelines/examples", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range specs {
			if p, ok := s.(*spec.Pipeline); ok {
				runPipeline(t, f, p)
			}
		}
	}
}

// runPipeline runs p's tests as subtests; p must have some.
func runPipeline(t *testing.T, file string, p *spec.Pipeline) {
	t.Helper()
	t.Run(file+"/"+p.Name, func(t *testing.T) {
		results, err := Run(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		if len(results) == 0 {
			t.Fatal("the pipeline has no tests")
		}
		for _, r := range results {
			if !r.Passed {
				t.Error(r.Report())
			}
		}
	})
}
