package stagetest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
	"github.com/sluice-cdc/sluice/pipelines/spec"
	"github.com/sluice-cdc/sluice/transforms"
)

// value reads a YAML value as a cdc value. Without a tag: integers are
// int64 (decimal when larger), floats float64, strings, booleans, null,
// timestamps (time.Time), !!binary bytes, lists []any, mappings JSON. A
// tag naming a type (!int32, !decimal, !uuid, !date, !json, ...) converts
// the value to it.
func (p *parser) value(n *yaml.Node, depth int) (any, error) {
	n = resolve(n)
	if p.nodes++; p.nodes > maxNodes || depth > maxDepth {
		return nil, fmt.Errorf("the tests are nested too deeply or too large")
	}
	if tag := n.Tag; strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		kind, elem, err := spec.ParseType(tag[1:])
		if err != nil {
			return nil, fmt.Errorf("tag %s: %v", tag, err)
		}
		plain := *n
		plain.Tag = ""
		if n.Kind == yaml.ScalarNode {
			plain.Tag = "!!str"
		}
		v, err := p.value(&plain, depth+1)
		if err != nil {
			return nil, err
		}
		return transforms.Convert(v, kind, elem)
	}
	switch n.Kind {
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, err := p.value(c, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case yaml.MappingNode:
		m, err := p.plainMap(n, depth)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		return cdc.JSON(b), nil
	case yaml.ScalarNode:
		return scalar(n)
	}
	return nil, fmt.Errorf("unsupported YAML value")
}

// plainMap reads a mapping as a JSON object's value.
func (p *parser) plainMap(n *yaml.Node, depth int) (map[string]any, error) {
	if p.nodes++; p.nodes > maxNodes || depth > maxDepth {
		return nil, fmt.Errorf("the tests are nested too deeply or too large")
	}
	m := map[string]any{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		c := resolve(n.Content[i+1])
		var v any
		var err error
		if c.Kind == yaml.MappingNode && !strings.HasPrefix(c.Tag, "!") || c.Tag == "!!map" {
			v, err = p.plainMap(c, depth+1)
		} else {
			v, err = p.value(c, depth+1)
		}
		if err != nil {
			return nil, err
		}
		if j, ok := v.(cdc.JSON); ok {
			v = json.RawMessage(j)
		}
		if t, ok := v.(time.Time); ok {
			v = t.Format(time.RFC3339Nano)
		}
		m[resolve(n.Content[i]).Value] = v
	}
	return m, nil
}

func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		err := n.Decode(&b)
		return b, err
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, nil
		}
		if r, ok := new(big.Rat).SetString(n.Value); ok && r.IsInt() {
			return cdc.Decimal(r.Num().String()), nil
		}
		return nil, fmt.Errorf("bad integer %q", n.Value)
	case "!!float":
		var f float64
		err := n.Decode(&f)
		return f, err
	case "!!timestamp":
		var t time.Time
		if err := n.Decode(&t); err != nil {
			return nil, err
		}
		return t.UTC().Truncate(time.Microsecond), nil
	case "!!binary":
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		if err != nil {
			return nil, fmt.Errorf("bad !!binary: %v", err)
		}
		return b, nil
	case "!!str":
		return n.Value, nil
	}
	return nil, fmt.Errorf("unsupported tag %s", n.ShortTag())
}

// kindOf is the kind of an input value: the tag's, or the Go type's.
func kindOf(n *yaml.Node, v any) (cdc.Kind, cdc.Kind) {
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		if k, e, err := spec.ParseType(n.Tag[1:]); err == nil {
			return k, e
		}
	}
	switch x := v.(type) {
	case bool:
		return cdc.KindBool, 0
	case int64:
		return cdc.KindInt64, 0
	case float64:
		return cdc.KindFloat64, 0
	case cdc.Decimal:
		return cdc.KindDecimal, 0
	case string:
		return cdc.KindString, 0
	case []byte:
		return cdc.KindBytes, 0
	case time.Time:
		return cdc.KindTimestampTZ, 0
	case cdc.JSON:
		return cdc.KindJSON, 0
	case []any:
		for _, e := range x {
			if e != nil {
				if k, _ := kindOf(&yaml.Node{}, e); k != cdc.KindArray && k != cdc.KindJSON {
					return cdc.KindArray, k
				}
			}
		}
		return cdc.KindArray, cdc.KindString
	}
	return cdc.KindUnknown, 0
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }
