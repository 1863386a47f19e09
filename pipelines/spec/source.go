package spec

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"gopkg.in/yaml.v3"
)

// Source is a source spec: the capture of one database (kind: Source).
// Exactly one connector block (for now only Postgres) is set.
//
// Parse sets the defaults before decoding, so a value written explicitly
// is checked even when it is the zero value. A spec built in Go should
// call SetDefaults before Validate.
type Source struct {
	// Name identifies the source; see ValidateName. It is part of the
	// names derived for the source (slot, publication, topics).
	Name     string       `yaml:"name" json:"name"`
	Postgres *Postgres    `yaml:"postgres,omitempty" json:"postgres,omitempty"`
	Snapshot SnapshotMode `yaml:"snapshot" json:"snapshot"`
	Topics   Topics       `yaml:"topics" json:"topics"`
	Format   Format       `yaml:"format" json:"format"`
}

// Postgres is the connector block of a PostgreSQL source.
type Postgres struct {
	// DSN is a postgres:// URL or a keyword/value connection string. It
	// may hold secret references; see Resolve.
	DSN string `yaml:"dsn" json:"dsn"`
	// Tables to capture, "schema.table" or "table" (schema public), as the
	// catalog spells them (no quoting, case-sensitive). See TableIDs.
	Tables []string `yaml:"tables" json:"tables"`
	// Slot and Publication override the derived names (SlotName,
	// PublicationName); they must be [a-z0-9_]{1,63}.
	Slot        string `yaml:"slot,omitempty" json:"slot,omitempty"`
	Publication string `yaml:"publication,omitempty" json:"publication,omitempty"`
	// HeartbeatInterval is how often an idle source still advances its
	// slot. Default 10s, at least 1s.
	HeartbeatInterval Duration `yaml:"heartbeat_interval" json:"heartbeat_interval"`
	// SnapshotChunkRows is how many rows a snapshot reads per query.
	// Default 10000, 1 to 1000000.
	SnapshotChunkRows int `yaml:"snapshot_chunk_rows" json:"snapshot_chunk_rows"`
}

// Topics configures the Kafka topics a source creates.
type Topics struct {
	// Partitions per table topic: default 1, 1 to 1000.
	Partitions int `yaml:"partitions" json:"partitions"`
	// ReplicationFactor: -1 (the default) means the broker's default,
	// else 1 to 10.
	ReplicationFactor int `yaml:"replication_factor" json:"replication_factor"`
}

// SnapshotMode says when a source snapshots its tables.
type SnapshotMode string

// The snapshot modes.
const (
	// SnapshotInitial snapshots on the first run, then streams (default).
	SnapshotInitial SnapshotMode = "initial"
	// SnapshotNever only streams changes made after the first run.
	SnapshotNever SnapshotMode = "never"
	// SnapshotWhenNeeded snapshots on the first run and whenever the
	// stored position can no longer be resumed from.
	SnapshotWhenNeeded SnapshotMode = "when_needed"
)

// Format is the encoding of records on Kafka.
type Format string

// FormatJSON is the JSON Debezium envelope, the default and for now the
// only format.
const FormatJSON Format = "json"

// The defaults and limits of a Source.
const (
	DefaultHeartbeatInterval = 10 * time.Second
	MinHeartbeatInterval     = time.Second
	DefaultSnapshotChunkRows = 10000
	MaxSnapshotChunkRows     = 1000000
	DefaultPartitions        = 1
	MaxPartitions            = 1000
	DefaultReplicationFactor = -1
	MaxReplicationFactor     = 10
	// DefaultSchema is the schema of a table named without one.
	DefaultSchema = "public"
)

// connectors lists the connector blocks a Source can have, in the order
// error messages name them. A new connector adds a line here, a field to
// Source and its own validate method.
var connectors = []struct {
	name    string
	present func(*Source) bool
}{
	{"postgres", func(s *Source) bool { return s.Postgres != nil }},
}

// Kind returns KindSource.
func (s *Source) Kind() Kind { return KindSource }

// Ident returns the source's name.
func (s *Source) Ident() string { return s.Name }

// Connector returns the name of the source's connector block
// ("postgres"), or "" unless exactly one is set.
func (s *Source) Connector() string {
	var found []string
	for _, c := range connectors {
		if c.present(s) {
			found = append(found, c.name)
		}
	}
	if len(found) != 1 {
		return ""
	}
	return found[0]
}

// SetDefaults sets every unset (zero) optional field to its default.
func (s *Source) SetDefaults() {
	if s.Snapshot == "" {
		s.Snapshot = SnapshotInitial
	}
	if s.Format == "" {
		s.Format = FormatJSON
	}
	if s.Topics.Partitions == 0 {
		s.Topics.Partitions = DefaultPartitions
	}
	if s.Topics.ReplicationFactor == 0 {
		s.Topics.ReplicationFactor = DefaultReplicationFactor
	}
	if s.Postgres != nil {
		s.Postgres.SetDefaults()
	}
}

// SetDefaults sets every unset (zero) optional field to its default.
func (p *Postgres) SetDefaults() {
	if p.HeartbeatInterval == 0 {
		p.HeartbeatInterval = Duration(DefaultHeartbeatInterval)
	}
	if p.SnapshotChunkRows == 0 {
		p.SnapshotChunkRows = DefaultSnapshotChunkRows
	}
}

// Validate returns the errors.Join of every problem, each a *FieldError.
func (s *Source) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if err := ValidateName(s.Name); err != nil {
		add("name", "%v", err)
	}
	var names, present []string
	for _, c := range connectors {
		names = append(names, c.name)
		if c.present(s) {
			present = append(present, c.name)
		}
	}
	if len(present) != 1 {
		add("", "source needs exactly one of: %s", strings.Join(names, ", "))
	}
	if s.Postgres != nil {
		errs = append(errs, s.Postgres.validate("postgres")...)
	}
	switch s.Snapshot {
	case SnapshotInitial, SnapshotNever, SnapshotWhenNeeded:
	default:
		add("snapshot", "want one of %s, %s, %s", SnapshotInitial, SnapshotNever, SnapshotWhenNeeded)
	}
	if p := s.Topics.Partitions; p < 1 || p > MaxPartitions {
		add("topics.partitions", "must be 1 to %d", MaxPartitions)
	}
	if r := s.Topics.ReplicationFactor; r != -1 && (r < 1 || r > MaxReplicationFactor) {
		add("topics.replication_factor", "must be -1 (broker default) or 1 to %d", MaxReplicationFactor)
	}
	if s.Format != FormatJSON {
		add("format", "want %s", FormatJSON)
	}
	return errors.Join(errs...)
}

// pgName is what a slot name may be (PostgreSQL allows only these for
// slots; we hold publications to the same rule).
var pgName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func (p *Postgres) validate(path string) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Path: path + "." + field, Msg: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(p.DSN) == "" {
		add("dsn", "required")
	} else if err := checkRefs(p.DSN); err != nil {
		add("dsn", "%v", err)
	}
	if len(p.Tables) == 0 {
		add("tables", "required: at least one table")
	}
	errs = append(errs, validateTables(path+".tables", p.Tables)...)
	for _, f := range [...]struct{ name, value string }{{"slot", p.Slot}, {"publication", p.Publication}} {
		if f.value != "" && !pgName.MatchString(f.value) {
			add(f.name, "must be 1 to 63 of a-z, 0-9 and _")
		}
	}
	if time.Duration(p.HeartbeatInterval) < MinHeartbeatInterval {
		add("heartbeat_interval", "must be at least %v", MinHeartbeatInterval)
	}
	if n := p.SnapshotChunkRows; n < 1 || n > MaxSnapshotChunkRows {
		add("snapshot_chunk_rows", "must be 1 to %d", MaxSnapshotChunkRows)
	}
	return errs
}

// validateTables checks table names: parseable, no secret references, no
// table twice (a bare name and its public.name are the same table).
func validateTables(path string, tables []string) []error {
	var errs []error
	first := map[cdc.TableID]int{}
	for i, t := range tables {
		p := fmt.Sprintf("%s[%d]", path, i)
		if strings.TrimSpace(t) != t || strings.ContainsAny(t, "\"\x00") || strings.Contains(t, "${") {
			errs = append(errs, &FieldError{Path: p,
				Msg: "want schema.table or table, without quotes, spaces around it or secret references"})
			continue
		}
		id, err := cdc.ParseTableID(t, DefaultSchema)
		if err != nil {
			errs = append(errs, &FieldError{Path: p, Msg: err.Error()})
			continue
		}
		if j, dup := first[id]; dup {
			errs = append(errs, &FieldError{Path: p, Msg: fmt.Sprintf("duplicate of %s[%d] (%s)", path, j, id)})
			continue
		}
		first[id] = i
	}
	return errs
}

// TableIDs returns the tables with bare names put in schema public.
func (p *Postgres) TableIDs() ([]cdc.TableID, error) {
	ids := make([]cdc.TableID, len(p.Tables))
	for i, t := range p.Tables {
		id, err := cdc.ParseTableID(t, DefaultSchema)
		if err != nil {
			return nil, fmt.Errorf("postgres.tables[%d]: %w", i, err)
		}
		ids[i] = id
	}
	return ids, nil
}

// SlotName returns the replication slot of the source in instance: the
// override if set, else SlotName(instance, s.Name).
func (s *Source) SlotName(instance string) string {
	if s.Postgres != nil && s.Postgres.Slot != "" {
		return s.Postgres.Slot
	}
	return SlotName(instance, s.Name)
}

// PublicationName returns the publication of the source in instance: the
// override if set, else PublicationName(instance, s.Name).
func (s *Source) PublicationName(instance string) string {
	if s.Postgres != nil && s.Postgres.Publication != "" {
		return s.Postgres.Publication
	}
	return PublicationName(instance, s.Name)
}

// Resolved returns a deep copy of s with the secret references in its DSN
// expanded (see Resolve). References are expanded in connection strings
// only: names must be the same wherever the spec is read. s itself keeps
// its references; never store or log the copy.
func (s *Source) Resolved() (*Source, error) {
	c := *s
	if s.Postgres != nil {
		pg := *s.Postgres
		pg.Tables = append([]string(nil), s.Postgres.Tables...)
		dsn, err := Resolve(pg.DSN)
		if err != nil {
			return nil, fmt.Errorf("source %q: postgres.dsn: %w", s.Name, err)
		}
		pg.DSN = dsn
		c.Postgres = &pg
	}
	return &c, nil
}

// Duration is a time.Duration written as a string such as "10s" or
// "1m30s" (time.ParseDuration). A bare number is an error: its unit would
// be a guess.
type Duration time.Duration

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText encodes d as its String form (for YAML and JSON).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a time.ParseDuration string (for JSON).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want a duration such as 10s: %w", err)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML accepts a string scalar that time.ParseDuration parses.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return errors.New("want a duration such as 10s")
	}
	return d.UnmarshalText([]byte(n.Value))
}
