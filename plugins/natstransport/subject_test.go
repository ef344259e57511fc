package natstransport

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	for _, tc := range []struct{ address, token string }{
		{"10.0.0.1:8848", "10_0_0_1:8848"},
		{"node-1.example:8848", "node-1_example:8848"},
		{"[fd00::1]:8848", "%5Bfd00::1%5D:8848"},
		{"a b*c>d", "a%20b%2Ac%3Ed"},
		{"under_score%", "under%5Fscore%25"},
		{"tab\there\nnl", "tab%09here%0Anl"},
		{"é", "%C3%A9"},
		{"*", "%2A"},
		{">", "%3E"},
	} {
		if got := Token(tc.address); got != tc.token {
			t.Errorf("Token(%q) = %q, want %q", tc.address, got, tc.token)
		}
		if got, err := address(tc.token); err != nil || got != tc.address {
			t.Errorf("address(%q) = %q, %v, want %q", tc.token, got, err, tc.address)
		}
	}
}

// TestTokenNeverBreaksASubject checks, over random addresses, that a
// token is one subject token with no wildcard, and reads back.
func TestTokenNeverBreaksASubject(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("._-:%*> \t\r\n[]aZ09\x00\xff")
	for range 20000 {
		b := make([]byte, 1+r.IntN(40))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = byte(r.IntN(256))
			} else {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		tok := Token(string(b))
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n\x00") {
			t.Fatalf("Token(%q) = %q, which breaks a subject", b, tok)
		}
		if got, err := address(tok); err != nil || got != string(b) {
			t.Fatalf("address(Token(%q)) = %q, %v", b, got, err)
		}
	}
}

func TestAddressRefusesWhatTokenNeverWrites(t *testing.T) {
	for _, tok := range []string{
		"",                          // no address
		"a.b",                       // a dot is '_'
		"a*b", "a>b", "a b", "a\tb", // wildcards, white space
		"%2e", "%2E", "%41", "%3A", "%5f%", // lower case, or escaping what stands for itself
		"%5", "%", "%ZZ", "%G1", // cut or not hex
		"é",                        // a byte outside the alphabet
		strings.Repeat("%25", 262), // too long once read
		strings.Repeat("a", 800),   // too long a token
	} {
		if got, err := address(tok); err == nil {
			t.Errorf("address(%q) = %q, want an error", tok, got)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := subjects{prefix: "prod.sextant"}
	if got, want := s.member(Token("10.0.0.2:9849"), Token("10.0.0.1:8848"), opCall), "prod.sextant.member.10_0_0_2:9849.10_0_0_1:8848.call"; got != want {
		t.Errorf("member = %q, want %q", got, want)
	}
	if got, want := s.listen(Token("10.0.0.2:9849")), "prod.sextant.member.10_0_0_2:9849.*.*"; got != want {
		t.Errorf("listen = %q, want %q", got, want)
	}
	if got, want := s.inbox(Token("10.0.0.1:8848")), "prod.sextant.inbox.10_0_0_1:8848"; got != want {
		t.Errorf("inbox = %q, want %q", got, want)
	}
	from, op, err := s.parse("prod.sextant.member.10_0_0_2:9849.%5Bfd00::1%5D:8848.pull")
	if err != nil || from != "[fd00::1]:8848" || op != opPull {
		t.Errorf("parse = %q, %q, %v", from, op, err)
	}
	for _, bad := range []string{
		"other.member.a.b.call",
		"prod.sextant.member.a.b",
		"prod.sextant.member.a.b.c.call",
		"prod.sextant.member.a.b%zz.call",
		"prod.sextant.inbox.a.b.call",
	} {
		if from, op, err := s.parse(bad); err == nil {
			t.Errorf("parse(%q) = %q, %q, want an error", bad, from, op)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, ok := range []string{"sextant", "prod.sextant", "a-b_c.d1"} {
		if err := checkPrefix(ok); err != nil {
			t.Errorf("checkPrefix(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".a", "a.", "a..b", "a.*", "a.>", "a b", "a:b", "a%b", strings.Repeat("a", 129)} {
		if err := checkPrefix(bad); err == nil {
			t.Errorf("checkPrefix(%q) passed", bad)
		}
	}
}

func TestClusterNames(t *testing.T) {
	for _, tc := range []struct {
		address, selfHost string
		want              []string
	}{
		{":9849", "10.0.0.1", []string{"10.0.0.1:9849"}},
		{"0.0.0.0:9849", "10.0.0.1", []string{"10.0.0.1:9849"}},
		{"[::]:9849", "node1.example", []string{"node1.example:9849"}},
		{"10.0.0.1:9849", "10.0.0.1", []string{"10.0.0.1:9849"}},
		{"127.0.0.1:0", "node-a.test", []string{"node-a.test:9849", "127.0.0.1:9849"}},
	} {
		got := clusterNames(tc.address, tc.selfHost, 9849)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("clusterNames(%q, %q) = %q, want %q", tc.address, tc.selfHost, got, tc.want)
		}
	}
}
