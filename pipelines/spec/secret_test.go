package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	t.Setenv("SLUICE_TEST_PW", "s3cr3t")
	t.Setenv("SLUICE_TEST_EMPTY", "")
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nl := file("nl", "filepw\n")
	crlf := file("crlf", "filepw\r\n")
	two := file("two", "filepw\n\n")
	none := file("none", "filepw")

	tests := []struct{ in, want string }{
		{"", ""},
		{"plain host=db", "plain host=db"},
		{"${env:SLUICE_TEST_PW}", "s3cr3t"},
		{"postgres://u:${env:SLUICE_TEST_PW}@h/db", "postgres://u:s3cr3t@h/db"},
		{"a${env:SLUICE_TEST_EMPTY}b", "ab"},
		{"${file:" + nl + "}", "filepw"},
		{"${file:" + crlf + "}", "filepw"},
		{"${file:" + two + "}", "filepw\n"},
		{"${file:" + none + "}", "filepw"},
		{"pw=${file:" + nl + "} again=${env:SLUICE_TEST_PW}", "pw=filepw again=s3cr3t"},
		{"cost $5 and $$", "cost $5 and $$"},
		{"literal $${env:SLUICE_TEST_PW}", "literal ${env:SLUICE_TEST_PW}"},
	}
	for _, tt := range tests {
		got, err := Resolve(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	t.Setenv("SLUICE_TEST_PW", "s3cr3t")
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct{ in, want string }{
		{"literalpw ${env:SLUICE_TEST_UNSET}",
			"resolving ${env:SLUICE_TEST_UNSET}: environment variable SLUICE_TEST_UNSET is not set"},
		{"${file:" + missing + "}",
			"resolving ${file:" + missing + "}: open " + missing + ": no such file or directory"},
		{"literalpw ${env:SLUICE_TEST_PW", `secret reference at offset 10: missing "}" (write "$${" for a literal "${")`},
		{"literalpw ${vault:x}", `secret reference at offset 10: want ${env:NAME} or ${file:PATH} (write "$${" for a literal "${")`},
		{"literalpw ${literalpw}", `secret reference at offset 10: want ${env:NAME} or ${file:PATH} (write "$${" for a literal "${")`},
		{"${env:A-B}", "secret reference at offset 0: ${env:...}: bad variable name"},
		{"${file:}", "secret reference at offset 0: ${file:...}: bad path (empty)"},
		// The first reference resolves; the error must not show its value.
		{"${env:SLUICE_TEST_PW}${env:SLUICE_TEST_UNSET}",
			"resolving ${env:SLUICE_TEST_UNSET}: environment variable SLUICE_TEST_UNSET is not set"},
	}
	for _, tt := range tests {
		got, err := Resolve(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Resolve(%q) = %q, %v; want error %s", tt.in, got, err, tt.want)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "literalpw") {
			t.Errorf("error shows a secret: %s", msg)
		}
	}
}

func TestSourceResolved(t *testing.T) {
	t.Setenv("ELMIS_DSN", "postgres://u:s3cr3t@db/elmis")
	specs, err := Parse([]byte(goodSource), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := specs[0].(*Source)
	r, err := s.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	if r.Postgres.DSN != "postgres://u:s3cr3t@db/elmis" {
		t.Errorf("resolved DSN = %q", r.Postgres.DSN)
	}
	if s.Postgres.DSN != "${env:ELMIS_DSN}" {
		t.Errorf("original changed: %q", s.Postgres.DSN)
	}
	r.Postgres.Tables[0] = "changed"
	if s.Postgres.Tables[0] != "public.requisitions" {
		t.Error("copy shares Tables with the original")
	}

	os.Unsetenv("ELMIS_DSN")
	_, err = s.Resolved()
	want := `source "elmis": postgres.dsn: resolving ${env:ELMIS_DSN}: environment variable ELMIS_DSN is not set`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u:s3cr3t@db:5432/elmis?sslmode=require", "postgres://u:xxxxx@db:5432/elmis?sslmode=require"},
		{"postgresql://u:p%40ss%2Fw@db/elmis", "postgresql://u:xxxxx@db/elmis"},
		{"POSTGRES://u:s3cr3t@db/x", "postgres://u:xxxxx@db/x"},
		{"postgres://u@db/x?password=s3cr3t&sslmode=disable&sslpassword=k3y",
			"postgres://u@db/x?password=xxxxx&sslmode=disable&sslpassword=xxxxx"},
		{"postgres://u:s3cr3t@h1:5432,h2:5433/x", "postgres://u:xxxxx@h1:5432,h2:5433/x"},
		{"postgres://db/x", "postgres://db/x"},
		{"postgres://u:s3cr3t@db/x?%zz=1", "postgres://u:xxxxx@db/x?%zz=xxxxx"}, // odd key: hidden
		{"postgres://u:s3cr3t@db:port/x", "postgres://xxxxx"},                   // unparseable
		{"host=db user=u password=s3cr3t dbname=x", "host=db user=u password=xxxxx dbname=x"},
		{"host=db password = 's3 cr\\'3t' dbname=x", "host=db password= xxxxx dbname=x"},
		{"password=s3\\ cr3t sslmode=require", "password=xxxxx sslmode=require"},
		{"host=db sslpassword=k3y PASSWORD=s3cr3t", "host=db sslpassword=xxxxx PASSWORD=xxxxx"},
		{"host=db application_name='my app'", "host=db application_name='my app'"},
		{"host=db password='unterminated s3cr3t", "host=db password=xxxxx"},
		{"host=db s3cr3t", "host=db xxxxx"}, // not key=value
		{"host=db password=", "host=db password=xxxxx"},
		{"", ""},
	}
	for _, tt := range tests {
		got := Redact(tt.in)
		if got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "s3") || strings.Contains(got, "k3y") {
			t.Errorf("Redact(%q) = %q leaks the password", tt.in, got)
		}
	}
}
