package spec

import (
	"errors"
	"fmt"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"gopkg.in/yaml.v3"
)

// Pipeline is a pipeline spec (kind: Pipeline): which source tables it
// consumes, the stages that reshape each record, and the sink that applies
// the result. Tests is kept as raw YAML for the stage test runner.
//
// Parse sets the defaults before decoding; a spec built in Go should call
// SetDefaults before Validate.
type Pipeline struct {
	// Name identifies the pipeline; see ValidateName.
	Name string `yaml:"name" json:"name"`
	// From says which source's topics the pipeline consumes.
	From From `yaml:"from" json:"from"`
	// Stages transform each record, in order.
	Stages []Stage `yaml:"stages,omitempty" json:"stages,omitempty"`
	// Sink applies the records to the destination.
	Sink Sink `yaml:"sink" json:"sink"`
	// Errors says what happens to a record that cannot be decoded,
	// transformed or written: dead_letter (default) or stop.
	Errors ErrorPolicy `yaml:"errors" json:"errors"`
	// Tests is the raw tests block, read by the stage test runner.
	Tests yaml.Node `yaml:"tests,omitempty" json:"-"`
}

// From names what a pipeline consumes.
type From struct {
	// Source is the name of the source.
	Source string `yaml:"source" json:"source"`
	// Tables, when given, are distinct tables of the source, spelled as
	// in Postgres.Tables; without them the pipeline reads every table of
	// the source.
	Tables []string `yaml:"tables,omitempty" json:"tables,omitempty"`
}

// ErrorPolicy says what a pipeline does with a record it cannot process.
type ErrorPolicy string

// The error policies.
const (
	// ErrorsDeadLetter sends the record to the pipeline's dead-letter
	// topic, with the reason, and goes on (default).
	ErrorsDeadLetter ErrorPolicy = "dead_letter"
	// ErrorsStop stops the pipeline at the record, which stays unapplied
	// until an operator fixes the cause.
	ErrorsStop ErrorPolicy = "stop"
)

// Sink says where and how a pipeline applies its records. Exactly one
// connector block (for now only Postgres) is set.
type Sink struct {
	Postgres *PostgresSink `yaml:"postgres,omitempty" json:"postgres,omitempty"`
	// Mode is how changes are written: upsert (default), insert or
	// history.
	Mode SinkMode `yaml:"mode" json:"mode"`
	// CreateTables creates missing destination tables (and adds missing
	// columns) from the source schema.
	CreateTables bool `yaml:"create_tables" json:"create_tables"`
	// BatchRows bounds the records applied in one destination transaction:
	// default 5000, 1 to 100000.
	BatchRows int `yaml:"batch_rows" json:"batch_rows"`
}

// PostgresSink is the connector block of a PostgreSQL sink.
type PostgresSink struct {
	// DSN is a postgres:// URL or a keyword/value connection string. It
	// may hold secret references; see Resolve.
	DSN string `yaml:"dsn" json:"dsn"`
	// OffsetsSchema is the destination schema of the table where the
	// pipeline stores the Kafka offsets it applied (default public).
	OffsetsSchema string `yaml:"offsets_schema" json:"offsets_schema"`
}

// SinkMode is how a sink writes changes.
type SinkMode string

// The sink modes.
const (
	// SinkUpsert keeps the latest image of every row: inserts and updates
	// upsert, deletes delete (default).
	SinkUpsert SinkMode = "upsert"
	// SinkInsert appends every inserted, read or updated row as a new
	// row; deletes are skipped.
	SinkInsert SinkMode = "insert"
	// SinkHistory appends every change, deletes included, with its
	// operation and source position.
	SinkHistory SinkMode = "history"
)

// The defaults and limits of a Pipeline.
const (
	DefaultBatchRows = 5000
	MaxBatchRows     = 100000
)

// Kind returns KindPipeline.
func (p *Pipeline) Kind() Kind { return KindPipeline }

// Ident returns the pipeline's name.
func (p *Pipeline) Ident() string { return p.Name }

// SetDefaults sets the defaults of the fields a spec may leave out.
func (p *Pipeline) SetDefaults() {
	p.Sink.SetDefaults()
	if p.Errors == "" {
		p.Errors = ErrorsDeadLetter
	}
}

// SetDefaults sets the sink's defaults.
func (s *Sink) SetDefaults() {
	if s.Mode == "" {
		s.Mode = SinkUpsert
	}
	if s.BatchRows == 0 {
		s.BatchRows = DefaultBatchRows
	}
}

// SetDefaults sets the PostgreSQL sink's defaults.
func (p *PostgresSink) SetDefaults() {
	if p.OffsetsSchema == "" {
		p.OffsetsSchema = DefaultSchema
	}
}

// Validate returns the errors.Join of every problem of the pipeline, each
// a *FieldError. It checks the pipeline on its own; CheckReferences checks
// it against the sources.
func (p *Pipeline) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if err := ValidateName(p.Name); err != nil {
		add("name", "%v", err)
	}
	if p.Errors != ErrorsDeadLetter && p.Errors != ErrorsStop {
		add("errors", "want %s or %s", ErrorsDeadLetter, ErrorsStop)
	}
	if p.From.Source == "" {
		add("from.source", "required")
	} else if err := ValidateName(p.From.Source); err != nil {
		add("from.source", "not a source name: %v", err)
	}
	errs = append(errs, validateTables("from.tables", p.From.Tables)...)
	for i := range p.Stages {
		errs = append(errs, p.Stages[i].validate(fmt.Sprintf("stages[%d]", i), 0)...)
	}
	errs = append(errs, p.Sink.validate("sink")...)
	return errors.Join(errs...)
}

func (s *Sink) validate(path string) []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if s.Postgres == nil {
		add(path, "a sink needs exactly one of: postgres")
	} else {
		pg := s.Postgres
		if pg.DSN == "" {
			add(path+".postgres.dsn", "required")
		} else if err := checkRefs(pg.DSN); err != nil {
			add(path+".postgres.dsn", "%v", err)
		}
		if !pgName.MatchString(pg.OffsetsSchema) && pg.OffsetsSchema != "" {
			add(path+".postgres.offsets_schema", "must match [a-z0-9_]{1,63}")
		}
	}
	switch s.Mode {
	case SinkUpsert, SinkInsert, SinkHistory:
	default:
		add(path+".mode", "want one of %s, %s, %s", SinkUpsert, SinkInsert, SinkHistory)
	}
	if s.BatchRows < 1 || s.BatchRows > MaxBatchRows {
		add(path+".batch_rows", "must be 1 to %d", MaxBatchRows)
	}
	return errs
}

// SourceTables returns the source tables the pipeline reads: From.Tables,
// or every table of src when From.Tables is empty.
func (p *Pipeline) SourceTables(src *Source) ([]cdc.TableID, error) {
	if len(p.From.Tables) == 0 {
		if src.Postgres == nil {
			return nil, fmt.Errorf("pipeline %q: source %q has no tables", p.Name, src.Name)
		}
		return src.Postgres.TableIDs()
	}
	ids := make([]cdc.TableID, len(p.From.Tables))
	for i, t := range p.From.Tables {
		id, err := cdc.ParseTableID(t, DefaultSchema)
		if err != nil {
			return nil, fmt.Errorf("from.tables[%d]: %w", i, err)
		}
		ids[i] = id
	}
	return ids, nil
}

// Resolved returns a copy of p with the secret references of its sink DSN
// expanded (see Source.Resolved). Never store or log the copy.
func (p *Pipeline) Resolved() (*Pipeline, error) {
	c := *p
	if p.Sink.Postgres != nil {
		pg := *p.Sink.Postgres
		dsn, err := Resolve(pg.DSN)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: sink.postgres.dsn: %w", p.Name, err)
		}
		pg.DSN = dsn
		c.Sink.Postgres = &pg
	}
	return &c, nil
}

// CheckReferences checks what a pipeline names outside itself: its source
// must be among sources and its tables among the source's tables. It
// returns the errors.Join of *FieldError.
func (p *Pipeline) CheckReferences(sources map[string]*Source) error {
	src, ok := sources[p.From.Source]
	if !ok {
		return &FieldError{Path: "from.source", Msg: fmt.Sprintf("no source named %q", p.From.Source)}
	}
	if src.Postgres == nil {
		return nil
	}
	have, err := src.Postgres.TableIDs()
	if err != nil {
		return err
	}
	known := map[cdc.TableID]bool{}
	for _, t := range have {
		known[t] = true
	}
	var errs []error
	for i, t := range p.From.Tables {
		id, err := cdc.ParseTableID(t, DefaultSchema)
		if err == nil && !known[id] {
			errs = append(errs, &FieldError{Path: fmt.Sprintf("from.tables[%d]", i),
				Msg: fmt.Sprintf("source %q does not capture %s", src.Name, id)})
		}
	}
	return errors.Join(errs...)
}
