package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

// Every name Sluice creates is derived here from the instance name and a
// spec name (DESIGN.md section 3). The functions are pure, so every
// component derives the same names.
//
// Derived names must be legal where they are used and distinct for
// distinct inputs. A derived name is its parts joined by a separator; a
// character the target does not allow, or one that would be ambiguous
// (the separator inside a part), becomes "_", or its lower case if that is
// allowed. Whenever a character was
// replaced or the name was cut to the target's length limit, "_" and
// HashLen hex digits of a SHA-256 of the original parts are appended, so
// such names stay distinct (with overwhelming probability). Names of valid
// instances and sources that fit need no hash and stay readable.

// HashLen is the number of hex digits of the hash appended to a derived
// name that had to be changed.
const HashLen = 8

// Length limits of the targets.
const (
	maxPGIdent = 63  // PostgreSQL NAMEDATALEN - 1
	maxTopic   = 249 // Kafka
)

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	instanceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
)

// ValidateName checks a source or pipeline name: 1 to 63 of a-z, 0-9, _
// and -, starting with a letter or digit.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("required")
	}
	if !nameRE.MatchString(name) {
		return errors.New("must match [a-z0-9][a-z0-9_-]{0,62}: it becomes part of slot and topic names")
	}
	return nil
}

// ValidateInstance checks an instance name: 1 to 32 of a-z, 0-9 and -,
// starting with a letter or digit. There is no "_": it separates the
// instance from the source in slot names.
func ValidateInstance(instance string) error {
	if instance == "" {
		return errors.New("instance name required")
	}
	if !instanceRE.MatchString(instance) {
		return errors.New("instance name must match [a-z0-9][a-z0-9-]{0,31}")
	}
	return nil
}

// SlotName returns the replication slot name of a source:
// sluice_<instance>_<source>, a PostgreSQL identifier (a-z, 0-9, _; at
// most 63 bytes). A source named with "-" gets a hash suffix.
func SlotName(instance, source string) string {
	return pgIdent(instance, source)
}

// PublicationName returns the publication name of a source. It is the
// same as SlotName (publications and slots are separate namespaces).
func PublicationName(instance, source string) string {
	return pgIdent(instance, source)
}

func pgIdent(instance, source string) string {
	inst := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	src := func(c byte) bool { return inst(c) || c == '_' }
	return derive("sluice_", '_', maxPGIdent, []string{instance, source},
		[]func(byte) bool{inst, src})
}

// ServerName returns the logical server name of a source,
// <instance>.<source>, the envelope's source.name.
func ServerName(instance, source string) string {
	return instance + "." + source
}

// TopicName returns the topic of a table: <instance>.<source>.<schema>.<table>,
// with characters other than a-z, A-Z, 0-9, _ and - (in particular a "."
// inside a part) replaced, and at most 249 characters (see above).
func TopicName(instance, source string, t cdc.TableID) string {
	return topic("", instance, source, t.Schema, t.Name)
}

// The control topics of an instance (see ControlTopic).
const (
	ControlConfigs = "configs"
	ControlOffsets = "offsets"
	ControlStatus  = "status"
)

// ControlTopic returns _sluice.<instance>.<what>, for what one of
// ControlConfigs, ControlOffsets and ControlStatus.
func ControlTopic(instance, what string) string {
	return topic("_sluice.", instance, what)
}

// DeadLetterTopic returns the dead-letter topic of a pipeline:
// _sluice.<instance>.dlq.<pipeline>.
func DeadLetterTopic(instance, pipeline string) string {
	return topic("_sluice.", instance, "dlq", pipeline)
}

// OffsetsTable returns the name of the destination table where a
// pipeline's sink stores the Kafka offsets it applied:
// _sluice_<instance>_<pipeline>_offsets, at most 63 bytes (a hash suffix
// replaces what does not fit). Sinks always quote it.
func OffsetsTable(instance, pipeline string) string {
	const suffix = "_offsets"
	inst := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' }
	pipe := func(c byte) bool { return inst(c) || c == '_' }
	return derive("_sluice_", '_', maxPGIdent-len(suffix), []string{instance, pipeline},
		[]func(byte) bool{inst, pipe}) + suffix
}

func topic(prefix string, parts ...string) string {
	legal := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	keep := make([]func(byte) bool, len(parts))
	for i := range keep {
		keep[i] = legal
	}
	return derive(prefix, '.', maxTopic, parts, keep)
}

// derive joins parts after prefix with sep, keeping the bytes of part i
// that keep[i] allows and replacing others with their lower case, if
// allowed, or "_". When it replaced any
// or the result is longer than max, it cuts the result to leave room for
// "_" and a hash of the parts, and appends them.
func derive(prefix string, sep byte, max int, parts []string, keep []func(byte) bool) string {
	var b strings.Builder
	b.WriteString(prefix)
	changed := false
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(sep)
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			switch {
			case keep[i](c):
			case c >= 'A' && c <= 'Z' && keep[i](c+'a'-'A'):
				c, changed = c+'a'-'A', true
			default:
				c, changed = '_', true
			}
			b.WriteByte(c)
		}
	}
	name := b.String()
	if !changed && len(name) <= max {
		return name
	}
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	suffix := "_" + hex.EncodeToString(h[:])[:HashLen]
	if len(name) > max-len(suffix) {
		name = name[:max-len(suffix)]
	}
	return name + suffix
}
