package spec

import (
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Pipeline is a pipeline spec (kind: Pipeline). For now only Name and From
// are typed and validated. Stages, Sink and Tests are kept as raw YAML
// nodes and are not checked (beyond stages being a list) until the
// pipeline spec is specified; their JSON encoding is not meaningful yet.
type Pipeline struct {
	// Name identifies the pipeline; see ValidateName.
	Name string `yaml:"name" json:"name"`
	// From says which source's topics the pipeline consumes.
	From From `yaml:"from" json:"from"`
	// Stages are the raw transform stages, in order. Not validated yet.
	Stages []yaml.Node `yaml:"stages,omitempty"`
	// Sink is the raw sink block. Not validated yet.
	Sink yaml.Node `yaml:"sink,omitempty"`
	// Tests is the raw tests block. Not validated yet.
	Tests yaml.Node `yaml:"tests,omitempty"`
}

// From names what a pipeline consumes.
type From struct {
	// Source is the name of the source.
	Source string `yaml:"source" json:"source"`
	// Tables, when given, are distinct tables of the source, spelled as
	// in Postgres.Tables.
	Tables []string `yaml:"tables,omitempty" json:"tables,omitempty"`
}

// Kind returns KindPipeline.
func (p *Pipeline) Kind() Kind { return KindPipeline }

// Ident returns the pipeline's name.
func (p *Pipeline) Ident() string { return p.Name }

// Validate checks Name and From only (see Pipeline) and returns the
// errors.Join of every problem, each a *FieldError.
func (p *Pipeline) Validate() error {
	var errs []error
	if err := ValidateName(p.Name); err != nil {
		errs = append(errs, &FieldError{Path: "name", Msg: err.Error()})
	}
	if p.From.Source == "" {
		errs = append(errs, &FieldError{Path: "from.source", Msg: "required"})
	} else if err := ValidateName(p.From.Source); err != nil {
		errs = append(errs, &FieldError{Path: "from.source", Msg: fmt.Sprintf("not a source name: %v", err)})
	}
	errs = append(errs, validateTables("from.tables", p.From.Tables)...)
	return errors.Join(errs...)
}
