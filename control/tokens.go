package control

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// Roles a token can have.
const (
	RoleAdmin = "admin" // every call
	RoleRead  = "read"  // GET only
)

// Tokens are the bearer tokens the API accepts. Only SHA-256 digests are
// kept, and they are compared in constant time.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	role   string
	digest [sha256.Size]byte
}

// ParseTokens reads "role:token" lines (role admin or read); blank lines
// and lines starting with # are skipped. Errors name the line, never the
// token.
func ParseTokens(text string) (Tokens, error) {
	var t Tokens
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		role, tok, ok := strings.Cut(line, ":")
		role, tok = strings.TrimSpace(role), strings.TrimSpace(tok)
		if !ok || tok == "" {
			return Tokens{}, fmt.Errorf("tokens line %d: want role:token", n)
		}
		if role != RoleAdmin && role != RoleRead {
			return Tokens{}, fmt.Errorf("tokens line %d: role must be %s or %s", n, RoleAdmin, RoleRead)
		}
		if len(tok) < 8 {
			return Tokens{}, fmt.Errorf("tokens line %d: a token needs at least 8 characters", n)
		}
		t.entries = append(t.entries, tokenEntry{role: role, digest: sha256.Sum256([]byte(tok))})
	}
	return t, sc.Err()
}

// Empty reports whether no token is configured (the API is then open, and
// the server refuses to listen beyond loopback).
func (t Tokens) Empty() bool { return len(t.entries) == 0 }

// Role returns the role of a presented token, or "" if it matches none.
// Every entry is compared, so the time taken does not depend on which
// one matches.
func (t Tokens) Role(token string) string {
	d := sha256.Sum256([]byte(token))
	role := ""
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			role = e.role
		}
	}
	return role
}
