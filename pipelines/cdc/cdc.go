// Package cdc holds the contracts shared by every part of Sluice: the change
// record, the table schema that describes it, source positions and the
// Source interface that connectors implement. It depends on the standard
// library only, so connectors, transforms and the runtime can all import it
// without cycles.
package cdc

import (
	"fmt"
	"strings"
	"time"
)

// Op is the kind of change a record carries.
type Op uint8

// The operations, with their Debezium letters in the comments.
const (
	OpUnknown  Op = iota
	OpRead        // "r": a row read by a snapshot
	OpCreate      // "c": an insert
	OpUpdate      // "u": an update
	OpDelete      // "d": a delete
	OpTruncate    // "t": a table truncate
)

// String returns the Debezium letter of the operation.
func (o Op) String() string {
	switch o {
	case OpRead:
		return "r"
	case OpCreate:
		return "c"
	case OpUpdate:
		return "u"
	case OpDelete:
		return "d"
	case OpTruncate:
		return "t"
	}
	return "?"
}

// ParseOp is the inverse of Op.String.
func ParseOp(s string) (Op, error) {
	switch s {
	case "r":
		return OpRead, nil
	case "c":
		return OpCreate, nil
	case "u":
		return OpUpdate, nil
	case "d":
		return OpDelete, nil
	case "t":
		return OpTruncate, nil
	}
	return OpUnknown, fmt.Errorf("unknown op %q (want one of r, c, u, d, t)", s)
}

// TableID names a table: Schema is the PostgreSQL schema or the MySQL database.
type TableID struct {
	Schema string
	Name   string
}

// String returns "schema.name".
func (t TableID) String() string { return t.Schema + "." + t.Name }

// ParseTableID splits "schema.name"; a bare name gets defaultSchema.
func ParseTableID(s, defaultSchema string) (TableID, error) {
	schema, name, ok := strings.Cut(s, ".")
	if !ok {
		schema, name = defaultSchema, s
	}
	if schema == "" || name == "" || strings.Contains(name, ".") {
		return TableID{}, fmt.Errorf("table %q: want schema.table", s)
	}
	return TableID{Schema: schema, Name: name}, nil
}

// Row maps column names to values. A column that is absent from the map was
// not sent by the source (for example an unchanged TOASTed value); a column
// present with a nil value is SQL NULL. The Go type of a non-nil value
// depends on the column's Kind, see Kind.
type Row map[string]any

// Record is one row change.
type Record struct {
	Table TableID
	Op    Op
	// Key holds the key columns (primary key or replica identity).
	Key Row
	// Before is the row before the change (updates and deletes; may hold
	// only the key columns, depending on the source's replica identity).
	// After is the row after it (reads, creates, updates). Nil where absent.
	Before, After Row
	// Position is where the change sits in the source's stream; opaque and
	// ordered per source. Source metadata for the envelope is in Source.
	Position Position
	// TxID identifies the source transaction; Seq is the 1-based order of
	// this record inside it.
	TxID string
	Seq  int64
	// CommitTime is when the source committed the change (snapshot: when the
	// snapshot read it).
	CommitTime time.Time
	// Schema describes the columns of Before, After and Key.
	Schema *TableSchema
	// Source carries connector-specific metadata for the envelope's source
	// block (lsn, gtid, file, pos, xmin...). Values are strings, numbers or
	// bools.
	Source SourceInfo
}

// SourceInfo is the source block of a record as the connector fills it.
type SourceInfo struct {
	Connector string // "postgresql", "mysql"
	Name      string // logical server name: <instance>.<source>
	DB        string // database name
	Snapshot  string // "false", "true", "last" (Debezium's values)
	// Extra holds the connector's own fields, e.g. "lsn" for PostgreSQL.
	Extra map[string]any
}

// Position is an opaque, per-source ordered marker of progress in the source's
// stream. Each connector defines its own encoding.
type Position []byte

// Kind is the logical type of a column. The Go type that a Row holds for a
// non-NULL value of each kind is given beside it.
type Kind uint8

// The kinds.
const (
	KindUnknown     Kind = iota
	KindBool             // bool
	KindInt16            // int16
	KindInt32            // int32
	KindInt64            // int64
	KindFloat32          // float32 (NaN and ±Inf allowed)
	KindFloat64          // float64 (NaN and ±Inf allowed)
	KindDecimal          // Decimal: exact text, e.g. "12.3400", "NaN"
	KindString           // string
	KindBytes            // []byte
	KindDate             // time.Time at UTC midnight, or Infinity
	KindTime             // time.Duration since midnight, microsecond precision
	KindTimeTZ           // string as the source prints it, e.g. "10:11:12.5+02"
	KindTimestamp        // time.Time in UTC (no zone in the source), or Infinity
	KindTimestampTZ      // time.Time in UTC, or Infinity
	KindInterval         // Interval
	KindUUID             // string, canonical lower-case form
	KindJSON             // JSON: the document's text
	KindEnum             // string
	KindArray            // []any of the element kind (Column.Elem); nested arrays are []any too
)

var kindNames = [...]string{"unknown", "bool", "int16", "int32", "int64", "float32", "float64",
	"decimal", "string", "bytes", "date", "time", "timetz", "timestamp", "timestamptz",
	"interval", "uuid", "json", "enum", "array"}

// String returns the kind's lower-case name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return KindUnknown, fmt.Errorf("unknown kind %q", s)
}

// Decimal is an exact decimal number in its canonical text form
// ("-12.3400", "NaN", "Infinity").
type Decimal string

// JSON is a json or jsonb document's text.
type JSON string

// Infinity is the value of a date or timestamp column that holds PostgreSQL's
// 'infinity' (Sign > 0) or '-infinity' (Sign < 0).
type Infinity struct{ Sign int }

// String returns "infinity" or "-infinity".
func (i Infinity) String() string {
	if i.Sign < 0 {
		return "-infinity"
	}
	return "infinity"
}

// Interval is an exact SQL interval: months, days and microseconds are kept
// apart because they do not convert into each other exactly.
type Interval struct {
	Months int32
	Days   int32
	Micros int64
}

// Column describes one column of a table.
type Column struct {
	Name string
	Kind Kind
	// Elem is the element kind for KindArray.
	Elem Kind
	// SourceType is the type as the source database names it, e.g.
	// "numeric(38,12)", "character varying(20)", "mood", "integer[]".
	SourceType string
	// Precision and Scale are set for decimals with a declared precision
	// (0 where unconstrained); Length for character types with a limit.
	Precision, Scale, Length int
	// Nullable is false for NOT NULL columns (when the source knows).
	Nullable bool
	// EnumValues lists the labels of an enum (or enum array) type.
	EnumValues []string
}

// TableSchema describes a table at one moment. Schemas change: a record
// always carries the schema that was in force when it was captured.
type TableSchema struct {
	Table   TableID
	Columns []Column
	// Key names the key columns in key order.
	Key []string
}

// Column returns the named column.
func (s *TableSchema) Column(name string) (Column, bool) {
	for _, c := range s.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}
