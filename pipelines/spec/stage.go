package spec

import (
	"fmt"
	"strings"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Stage is one transform stage: exactly one of its fields is set. The
// transforms package compiles stages into functions; docs/stages.md
// describes each. Validate checks what can be checked without compiling:
// expressions are parsed and type-checked by transforms.Compile.
type Stage struct {
	// Rename renames the destination table and fields.
	Rename *RenameStage `yaml:"rename,omitempty" json:"rename,omitempty"`
	// Drop removes the named fields.
	Drop []string `yaml:"drop,omitempty" json:"drop,omitempty"`
	// Keep removes every field except the named ones (and the key).
	Keep []string `yaml:"keep,omitempty" json:"keep,omitempty"`
	// Set sets a field to the value of an expression.
	Set *SetStage `yaml:"set,omitempty" json:"set,omitempty"`
	// Cast converts fields to other types.
	Cast *CastStage `yaml:"cast,omitempty" json:"cast,omitempty"`
	// Filter drops the records for which an expression is false.
	Filter *FilterStage `yaml:"filter,omitempty" json:"filter,omitempty"`
	// Route sends records to the table an expression names.
	Route *RouteStage `yaml:"route,omitempty" json:"route,omitempty"`
	// MapValues replaces a field's values through a code table.
	MapValues *MapValuesStage `yaml:"map_values,omitempty" json:"map_values,omitempty"`
	// UUID5 sets a field to a name-based (version 5) UUID.
	UUID5 *UUID5Stage `yaml:"uuid5,omitempty" json:"uuid5,omitempty"`
	// Split runs each branch on its own copy of the record and emits
	// every branch's records.
	Split []SplitBranch `yaml:"split,omitempty" json:"split,omitempty"`
	// Mask hides the characters of fields.
	Mask *MaskStage `yaml:"mask,omitempty" json:"mask,omitempty"`
	// Hash replaces fields by a keyed hash of their values.
	Hash *HashStage `yaml:"hash,omitempty" json:"hash,omitempty"`
	// Flatten copies values out of a JSON field into columns.
	Flatten *FlattenStage `yaml:"flatten,omitempty" json:"flatten,omitempty"`
	// Unwrap turns the change into a plain row (Debezium's
	// ExtractNewRecordState).
	Unwrap *UnwrapStage `yaml:"unwrap,omitempty" json:"unwrap,omitempty"`
}

// RenameStage renames a record's table and fields.
type RenameStage struct {
	// Table is the destination table, "schema.table" or "table" (schema
	// public), as the catalog spells it.
	Table string `yaml:"table,omitempty" json:"table,omitempty"`
	// Fields maps source field names to destination names.
	Fields map[string]string `yaml:"fields,omitempty" json:"fields,omitempty"`
}

// SetStage sets Field to the value of the CEL expression Expr.
type SetStage struct {
	Field string `yaml:"field" json:"field"`
	Expr  string `yaml:"expr" json:"expr"`
	// Type is the field's type (see ParseType); without it the type
	// follows from the expression and the column it replaces.
	Type string `yaml:"type,omitempty" json:"type,omitempty"`
}

// CastStage converts fields to other types.
type CastStage struct {
	// Fields maps field names to types (see ParseType).
	Fields map[string]string `yaml:"fields" json:"fields"`
	// OnError says what a value that does not convert becomes: "error"
	// (default: the record is rejected) or "set_null".
	OnError string `yaml:"on_error,omitempty" json:"on_error,omitempty"`
}

// FilterStage keeps the records for which the boolean CEL expression Expr
// is true.
type FilterStage struct {
	Expr string `yaml:"expr" json:"expr"`
}

// RouteStage sets a record's destination table to the value of Expr, a
// CEL expression giving "schema.table" or "table" (schema public).
type RouteStage struct {
	Expr string `yaml:"expr" json:"expr"`
}

// MapValuesStage replaces the value of Field through a code table: the
// inline Values or a File, not both.
type MapValuesStage struct {
	Field string `yaml:"field" json:"field"`
	// Values maps a value's text to its replacement; a null replacement
	// is SQL NULL.
	Values map[string]*string `yaml:"values,omitempty" json:"values,omitempty"`
	// File is a CSV file of from,to lines or a YAML or JSON mapping.
	File string `yaml:"file,omitempty" json:"file,omitempty"`
	// Default replaces every value the table does not list.
	Default *string `yaml:"default,omitempty" json:"default,omitempty"`
	// Unmapped says what happens to a value the table does not list
	// when there is no Default: "error" (default), "keep" or "set_null".
	Unmapped string `yaml:"unmapped,omitempty" json:"unmapped,omitempty"`
	// Type is the type of the replacements (default string).
	Type string `yaml:"type,omitempty" json:"type,omitempty"`
}

// UUID5Stage sets Field to the version 5 UUID of Namespace and the values
// of the From fields.
type UUID5Stage struct {
	Field string `yaml:"field" json:"field"`
	// Namespace is a UUID, or a name from which one is derived.
	Namespace string   `yaml:"namespace" json:"namespace"`
	From      []string `yaml:"from" json:"from"`
}

// SplitBranch is one branch of a split: the stages its copy of the record
// goes through (none: the record as it is).
type SplitBranch struct {
	Stages []Stage `yaml:"stages,omitempty" json:"stages,omitempty"`
}

// MaskStage replaces the characters of Fields with Char, except the first
// KeepFirst and last KeepLast.
type MaskStage struct {
	Fields    []string `yaml:"fields" json:"fields"`
	Char      string   `yaml:"char,omitempty" json:"char,omitempty"`
	KeepFirst int      `yaml:"keep_first,omitempty" json:"keep_first,omitempty"`
	KeepLast  int      `yaml:"keep_last,omitempty" json:"keep_last,omitempty"`
}

// HashStage replaces Fields by the HMAC-SHA256 of their values under Salt,
// which must be a secret reference (${env:NAME} or ${file:PATH}).
type HashStage struct {
	Fields []string `yaml:"fields" json:"fields"`
	Salt   string   `yaml:"salt" json:"salt"`
}

// FlattenStage copies values out of the JSON field Field into columns.
type FlattenStage struct {
	Field string `yaml:"field" json:"field"`
	// Columns maps a column name to a path in the document: keys (and
	// list indexes) separated by dots.
	Columns map[string]string `yaml:"columns" json:"columns"`
	// Types gives the type of columns (default string).
	Types map[string]string `yaml:"types,omitempty" json:"types,omitempty"`
	// Keep keeps Field; by default it is removed.
	Keep bool `yaml:"keep,omitempty" json:"keep,omitempty"`
}

// UnwrapStage turns a change into a plain row.
type UnwrapStage struct {
	// Delete says what becomes of a delete: "keep" (default), "drop", or
	// "rewrite" (an upsert of the old row with __deleted = true).
	Delete string `yaml:"delete,omitempty" json:"delete,omitempty"`
	// Add names metadata to add as "__" fields: see UnwrapFields.
	Add []string `yaml:"add,omitempty" json:"add,omitempty"`
}

// UnwrapFields lists the metadata an unwrap stage can add.
var UnwrapFields = []string{"op", "table", "schema", "db", "lsn", "tx_id", "source.ts_ms", "snapshot"}

// MaxSplitDepth bounds how deeply splits nest.
const MaxSplitDepth = 4

// stageKinds lists the stage names in the order error messages give them,
// with whether a stage has that one set.
var stageKinds = []struct {
	name string
	set  func(*Stage) bool
}{
	{"rename", func(s *Stage) bool { return s.Rename != nil }},
	{"drop", func(s *Stage) bool { return s.Drop != nil }},
	{"keep", func(s *Stage) bool { return s.Keep != nil }},
	{"set", func(s *Stage) bool { return s.Set != nil }},
	{"cast", func(s *Stage) bool { return s.Cast != nil }},
	{"filter", func(s *Stage) bool { return s.Filter != nil }},
	{"route", func(s *Stage) bool { return s.Route != nil }},
	{"map_values", func(s *Stage) bool { return s.MapValues != nil }},
	{"uuid5", func(s *Stage) bool { return s.UUID5 != nil }},
	{"split", func(s *Stage) bool { return s.Split != nil }},
	{"mask", func(s *Stage) bool { return s.Mask != nil }},
	{"hash", func(s *Stage) bool { return s.Hash != nil }},
	{"flatten", func(s *Stage) bool { return s.Flatten != nil }},
	{"unwrap", func(s *Stage) bool { return s.Unwrap != nil }},
}

// Kind returns the name of the stage's kind ("rename", "drop", ...), or
// "" when not exactly one is set.
func (s *Stage) Kind() string {
	kind := ""
	for _, k := range stageKinds {
		if k.set(s) {
			if kind != "" {
				return ""
			}
			kind = k.name
		}
	}
	return kind
}

// ParseType parses a field type as stages name them: a kind name (bool,
// int16, int32, int64, float32, float64, decimal, string, bytes, date,
// time, timetz, timestamp, timestamptz, interval, uuid, json), or one
// followed by "[]" for an array of it.
func ParseType(s string) (kind, elem cdc.Kind, err error) {
	base, isArray := strings.CutSuffix(s, "[]")
	k, err := cdc.ParseKind(base)
	if err != nil || k == cdc.KindUnknown || k == cdc.KindEnum || k == cdc.KindArray {
		return 0, 0, fmt.Errorf("unknown type %q (want bool, int16, int32, int64, float32, float64, "+
			"decimal, string, bytes, date, time, timetz, timestamp, timestamptz, interval, uuid, json, or one of them with [])", s)
	}
	if isArray {
		return cdc.KindArray, k, nil
	}
	return k, cdc.KindUnknown, nil
}
