package transforms

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
)

// split runs every branch on the record and emits all their records, in
// branch order. Stages never modify their input, so the branches can share
// it.
type split struct {
	branches []*Chain
}

func (c *compiler) newSplit(branches []spec.SplitBranch, path string) (Stage, error) {
	s := &split{}
	var errs []error
	for j, b := range branches {
		chain, es := c.chain(b.Stages, fmt.Sprintf("%s[%d].stages", path, j))
		errs = append(errs, es...)
		s.branches = append(s.branches, chain)
	}
	return s, errors.Join(errs...)
}

func (s *split) Apply(ctx context.Context, r cdc.Record) ([]cdc.Record, error) {
	var out []cdc.Record
	for _, b := range s.branches {
		recs, err := b.Apply(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}
