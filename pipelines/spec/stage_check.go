package spec

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// validate checks a stage at path; depth is how many splits enclose it.
func (s *Stage) validate(path string, depth int) []error {
	v := &stageCheck{}
	var names, set []string
	for _, k := range stageKinds {
		names = append(names, k.name)
		if k.set(s) {
			set = append(set, k.name)
		}
	}
	if len(set) != 1 {
		v.add(path, "a stage needs exactly one of: %s", strings.Join(names, ", "))
		return v.errs
	}
	path += "." + set[0]
	switch {
	case s.Rename != nil:
		r := s.Rename
		if r.Table == "" && len(r.Fields) == 0 {
			v.add(path, "needs table, fields or both")
		}
		if r.Table != "" {
			for _, err := range validateTables(path+".table", []string{r.Table}) {
				v.add(path+".table", "%s", err.(*FieldError).Msg)
			}
		}
		v.errs = append(v.errs, validateRenames(path+".fields", r.Fields)...)
	case s.Drop != nil:
		v.errs = append(v.errs, validateFields(path, s.Drop)...)
	case s.Keep != nil:
		v.errs = append(v.errs, validateFields(path, s.Keep)...)
	case s.Set != nil:
		v.field(path+".field", s.Set.Field)
		v.required(path+".expr", s.Set.Expr)
		v.typ(path+".type", s.Set.Type, true)
	case s.Cast != nil:
		if len(s.Cast.Fields) == 0 {
			v.add(path+".fields", "want at least one field")
		}
		for _, f := range sortedKeys(s.Cast.Fields) {
			v.field(joinPath(path+".fields", f), f)
			v.typ(joinPath(path+".fields", f), s.Cast.Fields[f], false)
		}
		v.oneOf(path+".on_error", s.Cast.OnError, "error", "set_null")
	case s.Filter != nil:
		v.required(path+".expr", s.Filter.Expr)
	case s.Route != nil:
		v.required(path+".expr", s.Route.Expr)
	case s.MapValues != nil:
		v.mapValues(path, s.MapValues)
	case s.UUID5 != nil:
		v.field(path+".field", s.UUID5.Field)
		v.required(path+".namespace", s.UUID5.Namespace)
		v.errs = append(v.errs, validateFields(path+".from", s.UUID5.From)...)
	case s.Split != nil:
		v.split(path, s.Split, depth)
	case s.Mask != nil:
		m := s.Mask
		v.errs = append(v.errs, validateFields(path+".fields", m.Fields)...)
		if m.Char != "" && utf8.RuneCountInString(m.Char) != 1 {
			v.add(path+".char", "want one character")
		}
		if m.KeepFirst < 0 {
			v.add(path+".keep_first", "must not be negative")
		}
		if m.KeepLast < 0 {
			v.add(path+".keep_last", "must not be negative")
		}
	case s.Hash != nil:
		v.errs = append(v.errs, validateFields(path+".fields", s.Hash.Fields)...)
		v.salt(path+".salt", s.Hash.Salt)
	case s.Flatten != nil:
		v.flatten(path, s.Flatten)
	case s.Unwrap != nil:
		v.oneOf(path+".delete", s.Unwrap.Delete, "keep", "drop", "rewrite")
		for i, a := range s.Unwrap.Add {
			if !slices.Contains(UnwrapFields, a) {
				v.add(fmt.Sprintf("%s.add[%d]", path, i), "want one of %s", strings.Join(UnwrapFields, ", "))
			}
		}
	}
	return v.errs
}

// stageCheck collects the problems of one stage.
type stageCheck struct{ errs []error }

func (v *stageCheck) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *stageCheck) required(path, s string) {
	if strings.TrimSpace(s) == "" {
		v.add(path, "required")
	}
}

func (v *stageCheck) field(path, name string) {
	if name == "" {
		v.add(path, "want a field name")
	}
}

func (v *stageCheck) typ(path, t string, optional bool) {
	if t == "" && optional {
		return
	}
	if _, _, err := ParseType(t); err != nil {
		v.add(path, "%v", err)
	}
}

func (v *stageCheck) oneOf(path, s string, allowed ...string) {
	if s != "" && !slices.Contains(allowed, s) {
		v.add(path, "want one of %s", strings.Join(allowed, ", "))
	}
}

func (v *stageCheck) mapValues(path string, m *MapValuesStage) {
	v.field(path+".field", m.Field)
	switch {
	case m.Values == nil && m.File == "":
		v.add(path, "needs values or file")
	case m.Values != nil && m.File != "":
		v.add(path, "values and file exclude each other")
	}
	v.oneOf(path+".unmapped", m.Unmapped, "error", "keep", "set_null")
	if m.Default != nil && m.Unmapped != "" {
		v.add(path+".unmapped", "default and unmapped exclude each other")
	}
	v.typ(path+".type", m.Type, true)
}

func (v *stageCheck) split(path string, branches []SplitBranch, depth int) {
	if len(branches) == 0 {
		v.add(path, "want at least one branch")
	}
	if depth >= MaxSplitDepth {
		v.add(path, "splits nest more than %d deep", MaxSplitDepth)
		return
	}
	for j, b := range branches {
		for k := range b.Stages {
			v.errs = append(v.errs, b.Stages[k].validate(fmt.Sprintf("%s[%d].stages[%d]", path, j, k), depth+1)...)
		}
	}
}

// salt checks that a salt is given by reference: a literal one would be
// stored, and returned by the API, with the spec.
func (v *stageCheck) salt(path, salt string) {
	refs := 0
	_, err := expandRefs(salt, func(string, string) (string, error) { refs++; return "", nil })
	switch {
	case salt == "":
		v.add(path, "required: a secret reference such as ${env:SALT}")
	case err != nil:
		v.add(path, "%v", err)
	case refs == 0:
		v.add(path, "want a secret reference such as ${env:SALT} or ${file:PATH}, not the salt itself")
	}
}

func (v *stageCheck) flatten(path string, f *FlattenStage) {
	v.field(path+".field", f.Field)
	if len(f.Columns) == 0 {
		v.add(path+".columns", "want at least one column")
	}
	for _, c := range sortedKeys(f.Columns) {
		p := joinPath(path+".columns", c)
		v.field(p, c)
		if slices.Contains(strings.Split(f.Columns[c], "."), "") {
			v.add(p, "want a path such as a.b.0")
		}
	}
	for _, c := range sortedKeys(f.Types) {
		p := joinPath(path+".types", c)
		if _, ok := f.Columns[c]; !ok {
			v.add(p, "not one of the columns")
		}
		v.typ(p, f.Types[c], false)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validateRenames checks a field rename map: names not empty, no two
// fields renamed to the same name.
func validateRenames(path string, m map[string]string) []error {
	var errs []error
	to := map[string]string{}
	for _, k := range sortedKeys(m) {
		p := joinPath(path, k)
		v := m[k]
		switch {
		case k == "":
			errs = append(errs, &FieldError{Path: p, Msg: "empty field name"})
		case v == "":
			errs = append(errs, &FieldError{Path: p, Msg: "want the new field name"})
		case to[v] != "":
			errs = append(errs, &FieldError{Path: p, Msg: fmt.Sprintf("%q is also the new name of %q", v, to[v])})
		default:
			to[v] = k
		}
	}
	return errs
}

// validateFields checks a list of field names: at least one, none empty,
// none twice.
func validateFields(path string, fields []string) []error {
	if len(fields) == 0 {
		return []error{&FieldError{Path: path, Msg: "want at least one field"}}
	}
	var errs []error
	first := map[string]int{}
	for i, f := range fields {
		p := fmt.Sprintf("%s[%d]", path, i)
		if f == "" {
			errs = append(errs, &FieldError{Path: p, Msg: "empty field name"})
			continue
		}
		if j, dup := first[f]; dup {
			errs = append(errs, &FieldError{Path: p, Msg: fmt.Sprintf("duplicate of %s[%d]", path, j)})
			continue
		}
		first[f] = i
	}
	return errs
}
