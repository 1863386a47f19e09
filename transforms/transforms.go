// Package transforms compiles the stages of a pipeline spec into a chain of
// pure functions that reshape records from the source schema into the
// destination schema (DESIGN.md section 2).
//
// A stage maps one record to zero (drop), one (map) or several (split)
// records. Stages are deterministic and have no side effects, so a replay
// from Kafka reproduces the same output. They never modify the record they
// are given: rows and schemas are copied before they change.
//
// docs/stages.md describes every stage, the CEL expressions of set, filter
// and route (cel.go, celvalues.go), and the conversion rules (values.go)
// by which computed values get the type their column says.
package transforms

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"cel.dev/cel-go/cel"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// Stage transforms one record.
type Stage interface {
	// Apply returns the records r becomes: none, one or several.
	Apply(ctx context.Context, r cdc.Record) ([]cdc.Record, error)
}

// StageError is a record that a stage rejected.
type StageError struct {
	// Stage is the stage's path and kind, e.g. "stages[2].rename".
	Stage string
	Err   error
}

func (e *StageError) Error() string { return e.Stage + ": " + e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

// StageName returns the stage's path and kind.
func (e *StageError) StageName() string { return e.Stage }

// Chain runs stages in order; each stage sees every output of the one
// before it.
type Chain struct {
	stages   []named
	observer StageObserver // see Observe
}

type named struct {
	name string
	Stage
}

// Option configures Compile.
type Option func(*options)

type options struct {
	now   func() time.Time
	fs    fs.FS
	check bool // Check: resolve no secrets, read no files
}

// WithClock sets the clock of the now() expression helper (default
// time.Now). Stage tests use a fixed one.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithFS sets where map_values reads its files: by default the file
// system, relative paths from the working directory.
func WithFS(fsys fs.FS) Option { return func(o *options) { o.fs = fsys } }

// Compile builds the chain of a pipeline's stages: it parses and
// type-checks expressions, reads code tables and resolves secret
// references (so it runs on the worker, and the chain must not be logged).
// It returns the errors.Join of *spec.FieldError for stages that cannot be
// built, with paths as in the spec ("stages[1].filter.expr").
func Compile(stages []spec.Stage, opts ...Option) (*Chain, error) {
	o := &options{now: time.Now}
	for _, opt := range opts {
		opt(o)
	}
	env, err := newEnv(o.now)
	if err != nil {
		return nil, fmt.Errorf("expression environment: %w", err)
	}
	c := &compiler{env: env, opts: o}
	chain, errs := c.chain(stages, "stages")
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return chain, nil
}

// Check compiles stages as Compile does, except that it neither resolves
// secret references nor reads code table files: what a control plane, which
// has neither the worker's secrets nor its files, can check of a spec. It
// returns Compile's errors.
func Check(stages []spec.Stage, opts ...Option) error {
	_, err := Compile(stages, append(opts, func(o *options) { o.check = true })...)
	return err
}

// compiler builds stages.
type compiler struct {
	env  *cel.Env
	opts *options
}

// chain compiles stages whose paths start with prefix.
func (c *compiler) chain(stages []spec.Stage, prefix string) (*Chain, []error) {
	chain := &Chain{}
	var errs []error
	for i := range stages {
		st := &stages[i]
		path := fmt.Sprintf("%s[%d]", prefix, i)
		kind := st.Kind()
		if kind == "" {
			errs = append(errs, &spec.FieldError{Path: path, Msg: "a stage needs exactly one kind"})
			continue
		}
		path += "." + kind
		s, err := c.stage(st, path)
		if err != nil {
			if len(spec.FieldErrors(err)) == 0 {
				err = &spec.FieldError{Path: path, Msg: err.Error()}
			}
			errs = append(errs, err)
			continue
		}
		chain.stages = append(chain.stages, named{path, s})
	}
	return chain, errs
}

// stage compiles one stage. Errors are *spec.FieldError (or joins of
// them), or plain errors that concern the stage as a whole.
func (c *compiler) stage(st *spec.Stage, path string) (Stage, error) {
	switch {
	case st.Rename != nil:
		return newRename(st.Rename)
	case st.Drop != nil:
		return newFieldFilter(st.Drop, false), nil
	case st.Keep != nil:
		return newFieldFilter(st.Keep, true), nil
	case st.Set != nil:
		return c.newSet(st.Set, path)
	case st.Cast != nil:
		return newCast(st.Cast, path)
	case st.Filter != nil:
		return c.newFilter(st.Filter, path)
	case st.Route != nil:
		return c.newRoute(st.Route, path)
	case st.MapValues != nil:
		return c.newMapValues(st.MapValues, path)
	case st.UUID5 != nil:
		return newUUID5(st.UUID5), nil
	case st.Split != nil:
		return c.newSplit(st.Split, path)
	case st.Mask != nil:
		return newMask(st.Mask), nil
	case st.Hash != nil:
		return newHash(st.Hash, path, c.opts.check)
	case st.Flatten != nil:
		return newFlatten(st.Flatten, path)
	case st.Unwrap != nil:
		return newUnwrap(st.Unwrap), nil
	}
	return nil, errors.New("unknown stage")
}

// Len returns the number of stages.
func (c *Chain) Len() int { return len(c.stages) }

// Apply runs r through every stage. An error is a *StageError naming the
// stage that failed; no output is returned with it.
func (c *Chain) Apply(ctx context.Context, r cdc.Record) ([]cdc.Record, error) {
	recs := []cdc.Record{r}
	for _, s := range c.stages {
		var next []cdc.Record
		dropped := 0
		for i, in := range recs {
			out, err := s.Apply(ctx, in)
			if err != nil {
				c.observe(s.name, i+1, len(next), dropped)
				var se *StageError
				if errors.As(err, &se) { // from a split's branch: names the inner stage
					return nil, err
				}
				return nil, &StageError{Stage: s.name, Err: err}
			}
			if len(out) == 0 {
				dropped++
			}
			next = append(next, out...)
		}
		c.observe(s.name, len(recs), len(next), dropped)
		recs = next
		if len(recs) == 0 {
			break
		}
	}
	return recs, nil
}
