package debezium

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Parameter keys of field schemas. The first three are Debezium's
// column.propagate.source.type keys; the __sluice ones let Decode rebuild the
// exact cdc.Column.
const (
	paramType      = "__debezium.source.column.type"
	paramLength    = "__debezium.source.column.length"
	paramScale     = "__debezium.source.column.scale"
	paramKind      = "__sluice.kind"
	paramElem      = "__sluice.elem"
	paramPrecision = "__sluice.precision" // Precision of a non-decimal column
	paramLen       = "__sluice.length"    // Length of a decimal column
	paramEnum      = "__sluice.enum"      // labels as a JSON array, when "allowed" would be ambiguous
	paramAllowed   = "allowed"            // io.debezium.data.Enum's comma-joined labels
)

// Semantic (logical) type names.
const (
	nameEnum        = "io.debezium.data.Enum"
	nameUUID        = "io.debezium.data.Uuid"
	nameJSON        = "io.debezium.data.Json"
	nameDate        = "io.debezium.time.Date"
	nameMicroTime   = "io.debezium.time.MicroTime"
	nameZonedTime   = "io.debezium.time.ZonedTime"
	nameMicroTS     = "io.debezium.time.MicroTimestamp"
	nameZonedTS     = "io.debezium.time.ZonedTimestamp"
	nameInterval    = "io.debezium.time.Interval"
	typeArray       = "array"
	typeStruct      = "struct"
	typeString      = "string"
	typeInt64       = "int64"
	typeDouble      = "double"
	typeBoolean     = "boolean"
	logicalVersion1 = `,"version":1`
)

// connectType returns the Kafka Connect type and semantic name of a kind.
func connectType(k cdc.Kind) (typ, name string, ok bool) {
	switch k {
	case cdc.KindBool:
		return typeBoolean, "", true
	case cdc.KindInt16:
		return "int16", "", true
	case cdc.KindInt32:
		return "int32", "", true
	case cdc.KindInt64:
		return typeInt64, "", true
	case cdc.KindFloat32:
		return "float", "", true
	case cdc.KindFloat64:
		return typeDouble, "", true
	case cdc.KindDecimal, cdc.KindString:
		return typeString, "", true
	case cdc.KindBytes:
		return "bytes", "", true
	case cdc.KindDate:
		return "int32", nameDate, true
	case cdc.KindTime:
		return typeInt64, nameMicroTime, true
	case cdc.KindTimeTZ:
		return typeString, nameZonedTime, true
	case cdc.KindTimestamp:
		return typeInt64, nameMicroTS, true
	case cdc.KindTimestampTZ:
		return typeString, nameZonedTS, true
	case cdc.KindInterval:
		return typeString, nameInterval, true
	case cdc.KindUUID:
		return typeString, nameUUID, true
	case cdc.KindJSON:
		return typeString, nameJSON, true
	case cdc.KindEnum:
		return typeString, nameEnum, true
	case cdc.KindArray:
		return typeArray, "", true
	}
	return "", "", false
}

// inferKind guesses the kind of a field schema written by Debezium itself
// (without __sluice.kind). Plain strings become KindString, so decimals in
// string mode read back as strings.
func inferKind(typ, name string) cdc.Kind {
	for k := cdc.KindBool; k <= cdc.KindArray; k++ {
		if k == cdc.KindDecimal {
			continue
		}
		if t, n, _ := connectType(k); t == typ && n == name {
			return k
		}
	}
	return cdc.KindUnknown
}

// appendColumnSchema appends the Connect field schema of c.
func appendColumnSchema(b []byte, c *cdc.Column) ([]byte, error) {
	typ, name, ok := connectType(c.Kind)
	if !ok {
		return b, fmt.Errorf("column %q: cannot encode kind %s", c.Name, c.Kind)
	}
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if c.Kind == cdc.KindArray {
		et, en, ok := connectType(c.Elem)
		if !ok || c.Elem == cdc.KindArray {
			return b, fmt.Errorf("column %q: cannot encode array of %s", c.Name, c.Elem)
		}
		b = append(b, `,"items":{"type":"`...)
		b = append(b, et...)
		b = append(b, `","optional":true`...)
		b = appendName(b, en)
		if c.Elem == cdc.KindEnum {
			b = append(b, `,"parameters":{`...)
			b = appendEnumParams(b, c.EnumValues)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = append(b, `,"optional":`...)
	b = strconv.AppendBool(b, c.Nullable)
	b = appendName(b, name)
	b = append(b, `,"parameters":{`...)
	b = appendParam(b, paramKind, c.Kind.String(), false)
	if c.Kind == cdc.KindArray {
		b = appendParam(b, paramElem, c.Elem.String(), true)
	}
	if c.SourceType != "" {
		b = appendParam(b, paramType, c.SourceType, true)
	}
	length, scale, extraKey, extra := c.Length, c.Scale, paramPrecision, c.Precision
	if c.Kind == cdc.KindDecimal {
		length, extraKey, extra = c.Precision, paramLen, c.Length
	}
	if length != 0 {
		b = appendParam(b, paramLength, strconv.Itoa(length), true)
	}
	if scale != 0 || (c.Kind == cdc.KindDecimal && length != 0) {
		b = appendParam(b, paramScale, strconv.Itoa(scale), true)
	}
	if extra != 0 {
		b = appendParam(b, extraKey, strconv.Itoa(extra), true)
	}
	if c.Kind == cdc.KindEnum {
		b = append(b, ',')
		b = appendEnumParams(b, c.EnumValues)
	}
	b = append(b, `},"field":`...)
	return append(appendValidString(b, c.Name), '}'), nil
}

func appendName(b []byte, name string) []byte {
	if name == "" {
		return b
	}
	b = append(b, `,"name":"`...)
	b = append(b, name...)
	return append(b, `"`+logicalVersion1...)
}

func appendParam(b []byte, k, v string, comma bool) []byte {
	if comma {
		b = append(b, ',')
	}
	return appendValidString(appendKey(b, k), v)
}

// appendEnumParams appends "allowed" (Debezium's comma-joined labels) and,
// when that cannot be split back exactly, __sluice.enum as a JSON array.
func appendEnumParams(b []byte, labels []string) []byte {
	b = appendParam(b, paramAllowed, strings.Join(labels, ","), false)
	for _, l := range labels {
		if l == "" || strings.Contains(l, ",") {
			js, _ := json.Marshal(labels) // []string always marshals
			return appendParam(b, paramEnum, string(js), true)
		}
	}
	return b
}

// connectSchema is a Kafka Connect JSON schema as Decode reads it.
type connectSchema struct {
	Type       string            `json:"type"`
	Optional   bool              `json:"optional"`
	Name       string            `json:"name"`
	Parameters map[string]string `json:"parameters"`
	Field      string            `json:"field"`
	Fields     []connectSchema   `json:"fields"`
	Items      *connectSchema    `json:"items"`
}

// field returns the named field of a struct schema, or nil.
func (s *connectSchema) field(name string) *connectSchema {
	if s == nil {
		return nil
	}
	for i := range s.Fields {
		if s.Fields[i].Field == name {
			return &s.Fields[i]
		}
	}
	return nil
}

// column rebuilds the cdc.Column that appendColumnSchema described.
func (s *connectSchema) column() (cdc.Column, error) {
	c := cdc.Column{Name: s.Field, Nullable: s.Optional, SourceType: s.Parameters[paramType]}
	var err error
	if c.Kind, c.Elem, err = s.kinds(); err != nil {
		return c, fmt.Errorf("column %q: %w", s.Field, err)
	}
	length, err1 := intParam(s.Parameters, paramLength)
	scale, err2 := intParam(s.Parameters, paramScale)
	if c.Kind == cdc.KindDecimal {
		c.Precision, c.Scale = length, scale
		c.Length, err = intParam(s.Parameters, paramLen)
	} else {
		c.Length, c.Scale = length, scale
		c.Precision, err = intParam(s.Parameters, paramPrecision)
	}
	enumSchema := s
	if c.Kind == cdc.KindArray {
		enumSchema = s.Items
	}
	if c.Kind == cdc.KindEnum || c.Elem == cdc.KindEnum {
		c.EnumValues, err1 = enumLabels(enumSchema.Parameters)
	}
	for _, e := range []error{err1, err2, err} {
		if e != nil {
			return c, fmt.Errorf("column %q: %w", s.Field, e)
		}
	}
	return c, nil
}

func (s *connectSchema) kinds() (kind, elem cdc.Kind, err error) {
	kind = inferKind(s.Type, s.Name)
	if k, ok := s.Parameters[paramKind]; ok {
		if kind, err = cdc.ParseKind(k); err != nil {
			return 0, 0, err
		}
	}
	if kind == cdc.KindUnknown {
		return 0, 0, fmt.Errorf("unsupported schema type %q name %q", s.Type, s.Name)
	}
	if kind != cdc.KindArray {
		return kind, cdc.KindUnknown, nil
	}
	if s.Items == nil {
		return 0, 0, fmt.Errorf("array schema without items")
	}
	elem = inferKind(s.Items.Type, s.Items.Name)
	if e, ok := s.Parameters[paramElem]; ok {
		if elem, err = cdc.ParseKind(e); err != nil {
			return 0, 0, err
		}
	}
	if elem == cdc.KindUnknown || elem == cdc.KindArray {
		return 0, 0, fmt.Errorf("unsupported array element kind %s", elem)
	}
	return kind, elem, nil
}

func intParam(p map[string]string, k string) (int, error) {
	v, ok := p[k]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("parameter %s: %w", k, err)
	}
	return n, nil
}

func enumLabels(p map[string]string) ([]string, error) {
	var labels []string
	if js, ok := p[paramEnum]; ok {
		if err := json.Unmarshal([]byte(js), &labels); err != nil {
			return nil, fmt.Errorf("parameter %s: %w", paramEnum, err)
		}
	} else if a := p[paramAllowed]; a != "" {
		labels = strings.Split(a, ",")
	}
	if len(labels) == 0 {
		return nil, nil
	}
	return labels, nil
}
