package spec

import (
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-cdc/sluice/pipelines/cdc"
)

var (
	pgIdentRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	topicRE   = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
)

// The derived names are persistent (slots, topics): these exact values must
// never change.
func TestNamesPinned(t *testing.T) {
	users := cdc.TableID{Schema: "public", Name: "users"}
	tests := []struct{ got, want string }{
		{SlotName("prod", "elmis"), "sluice_prod_elmis"},
		{PublicationName("prod", "elmis"), "sluice_prod_elmis"},
		{SlotName("prod-eu", "elmis"), "sluice_prod_eu_elmis_27d3c80a"},
		{SlotName("prod", "my-source"), "sluice_prod_my_source_5889d60e"},
		{SlotName("prod", "my_source"), "sluice_prod_my_source"},
		{ServerName("prod", "elmis"), "prod.elmis"},
		{TopicName("prod", "elmis", users), "prod.elmis.public.users"},
		{TopicName("prod", "elmis", cdc.TableID{Schema: "Sales", Name: "Order-Lines"}), "prod.elmis.Sales.Order-Lines"},
		{TopicName("prod", "elmis", cdc.TableID{Schema: "public", Name: "my table"}), "prod.elmis.public.my_table_e2855ef1"},
		{ControlTopic("prod", ControlConfigs), "_sluice.prod.configs"},
		{ControlTopic("prod", ControlOffsets), "_sluice.prod.offsets"},
		{ControlTopic("prod", ControlStatus), "_sluice.prod.status"},
		{DeadLetterTopic("prod", "requisitions-to-v3"), "_sluice.prod.dlq.requisitions-to-v3"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

func TestNamesLegalAndDistinct(t *testing.T) {
	long := strings.Repeat("a", 63)
	// Pairs of inputs that collide unless the hash tells them apart.
	slotPairs := [][2][2]string{
		{{"prod", "a-b"}, {"prod", "a_b"}},           // replaced character
		{{"a_b", "c"}, {"a", "b_c"}},                 // separator inside the instance
		{{"Prod", "x"}, {"prod", "x"}},               // case
		{{"prod", long + "1"}, {"prod", long + "2"}}, // cut to 63
		{{strings.Repeat("i", 32), long}, {strings.Repeat("i", 32), long[1:]}},
	}
	for _, p := range slotPairs {
		a, b := SlotName(p[0][0], p[0][1]), SlotName(p[1][0], p[1][1])
		if a == b {
			t.Errorf("SlotName collision: %v and %v both give %q", p[0], p[1], a)
		}
		for _, n := range []string{a, b} {
			if !pgIdentRE.MatchString(n) {
				t.Errorf("SlotName %q is not a PostgreSQL identifier", n)
			}
		}
	}

	tablePairs := [][2]cdc.TableID{
		{{Schema: "a.b", Name: "c"}, {Schema: "a", Name: "b.c"}},
		{{Schema: "public", Name: "a b"}, {Schema: "public", Name: "a_b"}},
		{{Schema: "public", Name: "zoë"}, {Schema: "public", Name: "zoé"}},
		{{Schema: "public", Name: strings.Repeat("x", 300) + "1"}, {Schema: "public", Name: strings.Repeat("x", 300) + "2"}},
	}
	for _, p := range tablePairs {
		a, b := TopicName("prod", "elmis", p[0]), TopicName("prod", "elmis", p[1])
		if a == b {
			t.Errorf("TopicName collision: %v and %v both give %q", p[0], p[1], a)
		}
		for _, n := range []string{a, b} {
			if !topicRE.MatchString(n) {
				t.Errorf("TopicName %q is not a legal topic", n)
			}
		}
	}
	if n := TopicName("prod", "elmis", tablePairs[3][0]); len(n) != 249 || !strings.HasPrefix(n, "prod.elmis.public.xxx") {
		t.Errorf("long topic = %q (%d)", n, len(n))
	}
	if n := SlotName("prod", long); len(n) != 63 || !strings.HasPrefix(n, "sluice_prod_aaa") {
		t.Errorf("long slot = %q (%d)", n, len(n))
	}
	if a, b := DeadLetterTopic("prod", "a.b"), DeadLetterTopic("prod", "a_b"); a == b || !topicRE.MatchString(a) {
		t.Errorf("dead-letter topics %q, %q", a, b)
	}
}

func TestValidateNames(t *testing.T) {
	for _, n := range []string{"a", "0", "elmis", "my-source_2", strings.Repeat("a", 63)} {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "-a", "_a", "A", "a.b", "a b", "a/b", "é", strings.Repeat("a", 64)} {
		if err := ValidateName(n); err == nil {
			t.Errorf("ValidateName(%q) passed", n)
		}
	}
	for _, n := range []string{"prod", "prod-eu-1", "0", strings.Repeat("a", 32)} {
		if err := ValidateInstance(n); err != nil {
			t.Errorf("ValidateInstance(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "prod_eu", "Prod", "-prod", "a.b", strings.Repeat("a", 33)} {
		if err := ValidateInstance(n); err == nil {
			t.Errorf("ValidateInstance(%q) passed", n)
		}
	}
}
