package spec

import "testing"

func TestQuoteRefs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres: {dsn: ${env:X}, tables: [t]}\n", "postgres: {dsn: '${env:X}', tables: [t]}\n"},
		{"dsn: ${env:X}\n", "dsn: '${env:X}'\n"},
		{"dsn: ${env:X}  # the DSN\n", "dsn: '${env:X}'  # the DSN\n"},
		{"l: [${file:/a b}, ${env:Y}]", "l: ['${file:/a b}', '${env:Y}']"},
		{"- ${env:X}\n", "- '${env:X}'\n"},
		{"q: {dsn: \"${env:X}\"}\n", "q: {dsn: \"${env:X}\"}\n"},
		{"q: '${env:X}'\n", "q: '${env:X}'\n"},
		{"dsn: postgres://u:${env:PW}@h/db\n", "dsn: postgres://u:${env:PW}@h/db\n"},
		{"dsn: ${env:A}${env:B}\n", "dsn: ${env:A}${env:B}\n"},
		{"# dsn: ${env:X}\n", "# dsn: ${env:X}\n"},
		{"f: ${file:/it's}\n", "f: '${file:/it''s}'\n"},
		{"s: \"a \\\" ${env:X}\"\n", "s: \"a \\\" ${env:X}\"\n"},
		{"x: ${env:X\n", "x: ${env:X\n"},
	}
	for _, tt := range tests {
		if got := string(quoteRefs([]byte(tt.in))); got != tt.want {
			t.Errorf("quoteRefs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseUnquotedFlowReference(t *testing.T) {
	specs, err := Parse([]byte("kind: Source\nname: a\npostgres: {dsn: ${env:X}, tables: [t]}\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := specs[0].(*Source).Postgres.DSN; got != "${env:X}" {
		t.Fatalf("dsn = %q", got)
	}
}
