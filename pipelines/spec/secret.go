package spec

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// Secret references. A string may hold, whole or inside a longer text:
//
//	${env:NAME}  the environment variable NAME of the worker
//	${file:PATH} the content of the file PATH on the worker, less one
//	             trailing newline (a relative PATH is relative to the
//	             worker's working directory)
//
// "$${" stands for a literal "${"; any other "${" is an error. Expanded
// values are not scanned again.

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Resolve returns s with its secret references expanded. An error names
// the reference (or, when it is malformed, its byte offset) but never
// shows a resolved value or the rest of s, which may hold a password.
func Resolve(s string) (string, error) {
	return expandRefs(s, func(scheme, arg string) (string, error) {
		if scheme == "env" {
			v, ok := os.LookupEnv(arg)
			if !ok {
				return "", fmt.Errorf("resolving ${env:%s}: environment variable %s is not set", arg, arg)
			}
			return v, nil
		}
		b, err := os.ReadFile(arg)
		if err != nil { // an *os.PathError: names the path, not the content
			return "", fmt.Errorf("resolving ${file:%s}: %w", arg, err)
		}
		v := string(b)
		if strings.HasSuffix(v, "\r\n") {
			return v[:len(v)-2], nil
		}
		return strings.TrimSuffix(v, "\n"), nil
	})
}

// checkRefs reports malformed references in s without resolving any.
func checkRefs(s string) error {
	_, err := expandRefs(s, func(string, string) (string, error) { return "", nil })
	return err
}

// expandRefs replaces each well-formed reference in s by get(scheme, arg).
func expandRefs(s string, get func(scheme, arg string) (string, error)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		j += i
		b.WriteString(s[i:j])
		switch {
		case strings.HasPrefix(s[j:], "$${"):
			b.WriteString("${")
			i = j + 3
			continue
		case !strings.HasPrefix(s[j:], "${"):
			b.WriteByte('$')
			i = j + 1
			continue
		}
		end := strings.IndexByte(s[j:], '}')
		if end < 0 {
			return "", fmt.Errorf(`secret reference at offset %d: missing "}" (write "$${" for a literal "${")`, j)
		}
		scheme, arg, _ := strings.Cut(s[j+2:j+end], ":")
		switch {
		case scheme == "env" && envName.MatchString(arg), scheme == "file" && arg != "":
		case scheme == "env" || scheme == "file":
			return "", fmt.Errorf("secret reference at offset %d: ${%s:...}: bad %s", j, scheme,
				map[string]string{"env": "variable name", "file": "path (empty)"}[scheme])
		default:
			return "", fmt.Errorf(`secret reference at offset %d: want ${env:NAME} or ${file:PATH} (write "$${" for a literal "${")`, j)
		}
		v, err := get(scheme, arg)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		i = j + end + 1
	}
	return b.String(), nil
}

// redacted replaces a password, as in url.URL.Redacted.
const redacted = "xxxxx"

// Redact returns dsn with its passwords (password, sslpassword) replaced by
// "xxxxx", for logging. It handles postgres:// and postgresql:// URLs and
// keyword/value strings ("host=db password='x y'"). What it cannot parse
// it hides from the first doubtful point on.
func Redact(dsn string) string {
	for _, scheme := range []string{"postgres://", "postgresql://"} {
		if len(dsn) >= len(scheme) && strings.EqualFold(dsn[:len(scheme)], scheme) {
			return redactURL(dsn, dsn[:len(scheme)])
		}
	}
	return redactKV(dsn)
}

func isPasswordKey(k string) bool {
	return strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword")
}

func redactURL(dsn, scheme string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return scheme + redacted
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	params := strings.Split(u.RawQuery, "&")
	for i, p := range params {
		k, _, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err != nil || isPasswordKey(uk) {
			params[i] = k + "=" + redacted
		}
	}
	u.RawQuery = strings.Join(params, "&")
	return u.String()
}

// redactKV redacts a libpq keyword/value string: key = value pairs
// separated by spaces, values optionally in single quotes, with
// backslash escapes.
func redactKV(dsn string) string {
	var b strings.Builder
	i := 0
	skipSpace := func() {
		for i < len(dsn) && isSpace(dsn[i]) {
			b.WriteByte(dsn[i])
			i++
		}
	}
	for {
		skipSpace()
		if i == len(dsn) {
			return b.String()
		}
		k := i
		for i < len(dsn) && dsn[i] != '=' && !isSpace(dsn[i]) {
			i++
		}
		key := dsn[k:i]
		for i < len(dsn) && isSpace(dsn[i]) {
			i++
		}
		if i == len(dsn) || dsn[i] != '=' {
			return b.String() + redacted // not key=value: hide the rest
		}
		b.WriteString(key + "=")
		i++
		skipSpace()
		v := i
		quoted := i < len(dsn) && dsn[i] == '\''
		if quoted {
			i++
		}
		for closed := false; i < len(dsn) && !closed; i++ {
			switch c := dsn[i]; {
			case c == '\\':
				i++
			case quoted && c == '\'':
				closed = true
			case !quoted && isSpace(c):
				closed = true
				i--
			}
		}
		if i > len(dsn) { // a trailing backslash
			i = len(dsn)
		}
		if isPasswordKey(key) {
			b.WriteString(redacted)
		} else {
			b.WriteString(dsn[v:i])
		}
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}
