// Package stagetest runs the stage tests that a pipeline spec carries in
// its tests block (docs/stages.md, "Stage tests"): each test gives an
// input record and the records the pipeline's stages must turn it into, or
// a part of the error they must fail with. No source, database or broker
// is needed: only the stages run.
package stagetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/transforms"
)

// Clock is the time now() gives in stage tests.
var Clock = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Result is the outcome of one test.
type Result struct {
	Name string
	Line int
	// Passed is true when the output matched.
	Passed bool
	// Problems say how the output differs from the expectation.
	Problems []string
	// Got is what the stages returned: records, or an error.
	Got    []cdc.Record
	GotErr error
}

// Run compiles p's stages and runs its tests. An error means the spec
// cannot be tested: stages that do not compile, or a tests block that does
// not parse (each problem a *spec.FieldError). opts are passed to
// transforms.Compile after the test clock.
func Run(ctx context.Context, p *spec.Pipeline, opts ...transforms.Option) ([]Result, error) {
	opts = append([]transforms.Option{transforms.WithClock(func() time.Time { return Clock })}, opts...)
	chain, cerr := transforms.Compile(p.Stages, opts...)
	tests, perr := Parse(&p.Tests, defaultTable(p))
	if err := errors.Join(cerr, perr); err != nil {
		return nil, err
	}
	results := make([]Result, len(tests))
	for i, t := range tests {
		results[i] = runOne(ctx, chain, t)
	}
	return results, nil
}

// defaultTable is the input table of tests that name none: the
// pipeline's first table.
func defaultTable(p *spec.Pipeline) string {
	if len(p.From.Tables) > 0 {
		return p.From.Tables[0]
	}
	return "public.test"
}

func runOne(ctx context.Context, chain *transforms.Chain, t Test) Result {
	res := Result{Name: t.Name, Line: t.Line}
	res.Got, res.GotErr = chain.Apply(ctx, t.Input)
	switch {
	case t.ExpectError != "" && res.GotErr == nil:
		res.Problems = append(res.Problems, fmt.Sprintf("want an error containing %q, got %d record(s)", t.ExpectError, len(res.Got)))
	case t.ExpectError != "":
		if !strings.Contains(res.GotErr.Error(), t.ExpectError) {
			res.Problems = append(res.Problems, fmt.Sprintf("want an error containing %q, got: %v", t.ExpectError, res.GotErr))
		}
	case res.GotErr != nil:
		res.Problems = append(res.Problems, fmt.Sprintf("unexpected error: %v", res.GotErr))
	default:
		res.Problems = compare(t.Expect, res.Got)
	}
	res.Passed = len(res.Problems) == 0
	return res
}

// Report writes r for people: PASS or FAIL with the name, then, for a
// failure, the problems and what the stages returned.
func (r Result) Report() string {
	var b strings.Builder
	if r.Passed {
		fmt.Fprintf(&b, "PASS %s\n", r.Name)
		return b.String()
	}
	fmt.Fprintf(&b, "FAIL %s (line %d)\n", r.Name, r.Line)
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "    %s\n", p)
	}
	if r.GotErr == nil {
		fmt.Fprintf(&b, "    got %d record(s):\n", len(r.Got))
		for _, rec := range r.Got {
			fmt.Fprintf(&b, "      - %s\n", render(rec))
		}
	}
	return b.String()
}

func joinErrs(errs []error) error { return errors.Join(errs...) }
