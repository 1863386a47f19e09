package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// pgType is one row of pg_type, as much as the source needs to map a
// column's type to a cdc.Kind.
type pgType struct {
	OID        uint32
	Name       string // typname
	Type       byte   // typtype: b base, e enum, d domain, c composite, r range, m multirange, p pseudo
	Category   byte   // typcategory: A array, N numeric, S string...
	Elem       uint32 // typelem, for arrays
	BaseOID    uint32 // typbasetype, for domains
	BaseTypMod int32  // typtypmod: the typmod a domain applies to its base type
	EnumLabels []string
}

// Built-in type OIDs (pg_type.dat).
const (
	oidBool        = 16
	oidBytea       = 17
	oidChar        = 18
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt2Vector  = 22
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidXID         = 28
	oidCID         = 29
	oidOIDVector   = 30
	oidJSON        = 114
	oidBox         = 603
	oidFloat4      = 700
	oidFloat8      = 701
	oidMoney       = 790
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidInterval    = 1186
	oidTimeTZ      = 1266
	oidBit         = 1560
	oidVarbit      = 1562
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
	oidXID8        = 5069
)

// loadTypesQuery reads the requested types and, recursively, the element
// types of arrays and the base types of domains, with enum labels in order.
const loadTypesQuery = `
WITH RECURSIVE wanted(oid) AS (
	SELECT unnest($1::oid[])
	UNION
	SELECT x.oid
	FROM wanted w
	JOIN pg_catalog.pg_type t ON t.oid = w.oid,
	LATERAL (VALUES (t.typelem), (t.typbasetype)) AS x(oid)
	WHERE x.oid <> 0
)
SELECT t.oid, t.typname::text, t.typtype::text, t.typcategory::text, t.typelem, t.typbasetype,
	t.typtypmod,
	COALESCE((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
		FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '{}')
FROM pg_catalog.pg_type t
JOIN wanted w ON w.oid = t.oid`

// loadTypes reads the given types from the catalog in one query, together
// with every type they depend on (array elements, domain bases, also
// nested: a domain over an array of enums).
func loadTypes(ctx context.Context, conn *pgx.Conn, oids []uint32) (map[uint32]pgType, error) {
	rows, err := conn.Query(ctx, loadTypesQuery, oids)
	if err != nil {
		return nil, fmt.Errorf("load types %v: %w", oids, err)
	}
	types := make(map[uint32]pgType, len(oids))
	for rows.Next() {
		var t pgType
		var typ, cat string
		if err := rows.Scan(&t.OID, &t.Name, &typ, &cat, &t.Elem, &t.BaseOID, &t.BaseTypMod,
			&t.EnumLabels); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load types: scan: %w", err)
		}
		if len(typ) > 0 {
			t.Type = typ[0]
		}
		if len(cat) > 0 {
			t.Category = cat[0]
		}
		if len(t.EnumLabels) == 0 {
			t.EnumLabels = nil
		}
		types[t.OID] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load types: %w", err)
	}
	for _, oid := range oids {
		if _, ok := types[oid]; !ok {
			return nil, fmt.Errorf("load types: type %d not found", oid)
		}
	}
	return types, nil
}

// maxDomainDepth guards against a catalog loop (there should be none).
const maxDomainDepth = 32

// columnFor describes a column of type oid with modifier typmod (-1 when
// none). Domains take the kind of their base type (and its typmod when the
// column has none); arrays are KindArray with the element's kind in Elem.
// Types without a kind of their own (inet, point, tsvector, hstore, ranges,
// composites, money...) are KindString and carry their text form. money is
// a string on purpose: its text form depends on lc_monetary ("$1.50").
// SourceType reads like format_type: domains and enums by their name.
func columnFor(name string, oid uint32, typmod int32, types map[uint32]pgType) cdc.Column {
	c := cdc.Column{Name: name, Nullable: true}
	c.SourceType = formatType(oid, typmod, types)
	base, mod := resolveDomain(oid, typmod, types)
	if t, ok := types[base]; ok && isArray(t) {
		elem, emod := resolveDomain(t.Elem, mod, types)
		c.Kind = cdc.KindArray
		var ec cdc.Column
		ec.Kind, ec.EnumValues = kindOf(elem, types)
		c.Elem, c.EnumValues = ec.Kind, ec.EnumValues
		setModifiers(&c, elem, emod)
		return c
	}
	c.Kind, c.EnumValues = kindOf(base, types)
	setModifiers(&c, base, mod)
	return c
}

// resolveDomain follows domains down to their base type.
func resolveDomain(oid uint32, typmod int32, types map[uint32]pgType) (uint32, int32) {
	for range maxDomainDepth {
		t, ok := types[oid]
		if !ok || t.Type != 'd' {
			break
		}
		if typmod < 0 {
			typmod = t.BaseTypMod
		}
		oid = t.BaseOID
	}
	return oid, typmod
}

// isArray tells true arrays from the few types with a typelem whose text
// form is not an array literal (int2vector, oidvector, name, point...).
func isArray(t pgType) bool {
	return t.Type == 'b' && t.Category == 'A' && t.Elem != 0 && t.OID != oidInt2Vector && t.OID != oidOIDVector
}

// kindOf maps a non-domain, non-array type to its kind.
func kindOf(oid uint32, types map[uint32]pgType) (cdc.Kind, []string) {
	switch oid {
	case oidBool:
		return cdc.KindBool, nil
	case oidInt2:
		return cdc.KindInt16, nil
	case oidInt4:
		return cdc.KindInt32, nil
	case oidInt8, oidOID, oidXID, oidCID:
		return cdc.KindInt64, nil
	case oidXID8:
		return cdc.KindDecimal, nil // unsigned 64-bit
	case oidFloat4:
		return cdc.KindFloat32, nil
	case oidFloat8:
		return cdc.KindFloat64, nil
	case oidNumeric:
		return cdc.KindDecimal, nil
	case oidBytea:
		return cdc.KindBytes, nil
	case oidDate:
		return cdc.KindDate, nil
	case oidTime:
		return cdc.KindTime, nil
	case oidTimeTZ:
		return cdc.KindTimeTZ, nil
	case oidTimestamp:
		return cdc.KindTimestamp, nil
	case oidTimestampTZ:
		return cdc.KindTimestampTZ, nil
	case oidInterval:
		return cdc.KindInterval, nil
	case oidUUID:
		return cdc.KindUUID, nil
	case oidJSON, oidJSONB:
		return cdc.KindJSON, nil
	}
	if t, ok := types[oid]; ok && t.Type == 'e' {
		return cdc.KindEnum, t.EnumLabels
	}
	return cdc.KindString, nil
}

// setModifiers sets Precision/Scale of numerics and Length of character
// types from the typmod of the (base or element) type.
func setModifiers(c *cdc.Column, oid uint32, typmod int32) {
	switch oid {
	case oidNumeric:
		if typmod >= 4 {
			c.Precision = int((typmod - 4) >> 16 & 0xffff)
			c.Scale = int(int16((typmod - 4) & 0xffff)) // negative scales exist since PG 15
		}
	case oidVarchar, oidBPChar:
		if typmod >= 4 {
			c.Length = int(typmod - 4)
		}
	}
}

// formatType names a type the way PostgreSQL's format_type does (without
// schema qualification).
func formatType(oid uint32, typmod int32, types map[uint32]pgType) string {
	t, known := types[oid]
	if known && isArray(t) {
		return formatType(t.Elem, typmod, types) + "[]"
	}
	switch oid {
	case oidBool:
		return "boolean"
	case oidChar:
		return `"char"`
	case oidInt2:
		return "smallint"
	case oidInt4:
		return "integer"
	case oidInt8:
		return "bigint"
	case oidFloat4:
		return "real"
	case oidFloat8:
		return "double precision"
	case oidNumeric:
		if typmod >= 4 {
			m := typmod - 4
			return fmt.Sprintf("numeric(%d,%d)", m>>16&0xffff, int16(m&0xffff))
		}
		return "numeric"
	case oidVarchar:
		return withLength("character varying", typmod, 4)
	case oidBPChar:
		if typmod < 0 {
			return "bpchar"
		}
		return withLength("character", typmod, 4)
	case oidBit:
		return withLength("bit", typmod, 0)
	case oidVarbit:
		return withLength("bit varying", typmod, 0)
	case oidTime, oidTimeTZ, oidTimestamp, oidTimestampTZ:
		return formatTimeType(oid, typmod)
	case oidInterval:
		return formatInterval(typmod)
	}
	if name, ok := builtinNames[oid]; ok {
		return name
	}
	if known {
		return quoteIdent(t.Name)
	}
	return "oid " + strconv.FormatUint(uint64(oid), 10)
}

// builtinNames names the built-in types whose format_type is their typname,
// for when the catalog map lacks them.
var builtinNames = map[uint32]string{
	oidBytea: "bytea", oidName: "name", oidText: "text", oidOID: "oid", oidXID: "xid", oidCID: "cid",
	oidJSON: "json", oidJSONB: "jsonb", oidMoney: "money", oidDate: "date", oidUUID: "uuid",
	oidXID8: "xid8", oidInt2Vector: "int2vector", oidOIDVector: "oidvector", oidBox: "box",
}

func withLength(name string, typmod, offset int32) string {
	if typmod < offset || typmod < 0 {
		return name
	}
	return fmt.Sprintf("%s(%d)", name, typmod-offset)
}

func formatTimeType(oid uint32, typmod int32) string {
	base, zone := "time", " without time zone"
	if oid == oidTimestamp || oid == oidTimestampTZ {
		base = "timestamp"
	}
	if oid == oidTimeTZ || oid == oidTimestampTZ {
		zone = " with time zone"
	}
	if typmod >= 0 {
		base += "(" + strconv.Itoa(int(typmod)) + ")"
	}
	return base + zone
}

// Interval typmod: range bits in the high 16 bits, precision in the low.
var intervalRanges = map[int32]string{
	1 << 2: " year", 1 << 1: " month", 1 << 3: " day", 1 << 10: " hour", 1 << 11: " minute",
	1 << 12: " second", 1<<2 | 1<<1: " year to month", 1<<3 | 1<<10: " day to hour",
	1<<3 | 1<<10 | 1<<11: " day to minute", 1<<3 | 1<<10 | 1<<11 | 1<<12: " day to second",
	1<<10 | 1<<11: " hour to minute", 1<<10 | 1<<11 | 1<<12: " hour to second",
	1<<11 | 1<<12: " minute to second",
}

func formatInterval(typmod int32) string {
	if typmod < 0 {
		return "interval"
	}
	s := "interval" + intervalRanges[typmod>>16&0x7fff]
	if p := typmod & 0xffff; p != 0xffff {
		s += "(" + strconv.Itoa(int(p)) + ")"
	}
	return s
}

// quoteIdent quotes a type name the way quote_ident would.
func quoteIdent(s string) string {
	plain := s != ""
	for i, r := range s {
		if !(r == '_' || (r >= 'a' && r <= 'z') || (i > 0 && r >= '0' && r <= '9') || r >= 0x80) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
