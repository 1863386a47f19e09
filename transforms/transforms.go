// Package transforms compiles the stages of a pipeline spec into a chain of
// pure functions that reshape records from the source schema into the
// destination schema (DESIGN.md section 2).
//
// A stage maps one record to zero (drop), one (map) or several (split)
// records. Stages are deterministic and have no side effects, so a replay
// from Kafka reproduces the same output. They never modify the record they
// are given: rows and schemas are copied before they change.
package transforms

import (
	"context"
	"errors"
	"fmt"

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
	stages []named
}

type named struct {
	name string
	Stage
}

// Compile builds the chain of a pipeline's stages. It returns the
// errors.Join of *spec.FieldError for stages that cannot be built, with
// paths as in the spec ("stages[1].rename.fields").
func Compile(stages []spec.Stage) (*Chain, error) {
	c := &Chain{}
	var errs []error
	for i := range stages {
		st := &stages[i]
		path := fmt.Sprintf("stages[%d]", i)
		kind := st.Kind()
		var s Stage
		var err error
		switch kind {
		case "rename":
			s, err = newRename(st.Rename)
		case "drop":
			s = newFieldFilter(st.Drop, false)
		case "keep":
			s = newFieldFilter(st.Keep, true)
		default:
			err = errors.New("a stage needs exactly one kind")
		}
		if err != nil {
			errs = append(errs, &spec.FieldError{Path: path + "." + kind, Msg: err.Error()})
			continue
		}
		c.stages = append(c.stages, named{path + "." + kind, s})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// Len returns the number of stages.
func (c *Chain) Len() int { return len(c.stages) }

// Apply runs r through every stage. An error is a *StageError naming the
// stage that failed; no output is returned with it.
func (c *Chain) Apply(ctx context.Context, r cdc.Record) ([]cdc.Record, error) {
	recs := []cdc.Record{r}
	for _, s := range c.stages {
		var next []cdc.Record
		for _, in := range recs {
			out, err := s.Apply(ctx, in)
			if err != nil {
				return nil, &StageError{Stage: s.name, Err: err}
			}
			next = append(next, out...)
		}
		recs = next
		if len(recs) == 0 {
			break
		}
	}
	return recs, nil
}
