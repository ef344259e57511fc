package natstransport

import (
	"errors"
	"fmt"
	"strings"
)

// The subjects of the transport, under the prefix P (subject_prefix):
//
//	P.member.TO.FROM.OP   what FROM sends to TO: OP is call, part, cancel,
//	                      snap, pull or ping
//	P.inbox.SELF.>        the answers to what SELF asked (its NATS inbox)
//
// TO is the token of the receiver's cluster address (the address callers
// give as a target); FROM and SELF are the token of the sender's own HTTP
// address (the node's self, as the members know it). A node subscribes to
// P.member.ITS-CLUSTER-ADDRESS.*.* and P.inbox.ITS-SELF.>, and, with the
// NATS permissions of the README, may publish only to P.member.*.ITS-SELF.*:
// the FROM of a message is then who sent it, as NATS authenticated it.
const (
	memberToken = "member"
	inboxToken  = "inbox"
)

// The ops: the last token of a member subject.
const (
	opCall   = "call"   // a call, or its last piece (a request)
	opPart   = "part"   // a piece of a call before its last (no reply)
	opCancel = "cancel" // the caller withdrew a call or a snapshot (no reply)
	opSnap   = "snap"   // a snapshot's first piece, please (a request)
	opPull   = "pull"   // the next piece of an answer or a snapshot (a request)
	opPing   = "ping"   // are you there (a request; the answer is empty)
)

// maxAddress bounds an address in a subject, in bytes: a host name (253)
// and a port.
const maxAddress = 261

// Token is how an address (host:port) appears as a token of a subject: '.'
// becomes '_'; letters, digits, '-' and ':' stay; any other byte, '_' and
// '%' included, becomes %XX (upper-case hex). So 10.0.0.1:8848 is
// 10_0_0_1:8848, node-1.example:8848 is node-1_example:8848 and
// [fd00::1]:8848 is %5Bfd00::1%5D:8848. A token never holds '.', '*', '>'
// or white space, and each address has exactly one.
func Token(address string) string {
	var b strings.Builder
	for i := range len(address) {
		switch c := address[i]; {
		case c == '.':
			b.WriteByte('_')
		case kept(c):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// kept reports whether c stands for itself in a token.
func kept(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == ':'
}

// address is the address whose token tok is. Only a token as Token writes
// it passes: one address has one token.
func address(tok string) (string, error) {
	if tok == "" {
		return "", errors.New("an empty address")
	}
	if len(tok) > 3*maxAddress {
		return "", fmt.Errorf("an address token of %d bytes", len(tok))
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c == '_':
			b.WriteByte('.')
		case kept(c):
			b.WriteByte(c)
		case c == '%' && i+2 < len(tok) && upperHex(tok[i+1]) && upperHex(tok[i+2]):
			d := unhex(tok[i+1])<<4 | unhex(tok[i+2])
			if d == '.' || kept(d) {
				return "", fmt.Errorf("the address token %q escapes %q, which stands for itself", tok, d)
			}
			b.WriteByte(d)
			i += 2
		default:
			return "", fmt.Errorf("the address token %q holds %q at byte %d", tok, c, i)
		}
	}
	if b.Len() > maxAddress {
		return "", fmt.Errorf("an address of %d bytes", b.Len())
	}
	return b.String(), nil
}

func upperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// checkAddress checks an address before it goes into a subject.
func checkAddress(what, a string) error {
	switch {
	case a == "":
		return fmt.Errorf("natstransport: no %s", what)
	case len(a) > maxAddress:
		return fmt.Errorf("natstransport: the %s %.40q... is %d bytes, more than %d", what, a, len(a), maxAddress)
	}
	return nil
}

// checkPrefix checks subject_prefix: one or more tokens of letters, digits,
// '-' and '_', separated by dots.
func checkPrefix(p string) error {
	if p == "" {
		return errors.New("config.subject_prefix: must not be empty")
	}
	if len(p) > 128 {
		return fmt.Errorf("config.subject_prefix: %d bytes, more than 128", len(p))
	}
	for tok := range strings.SplitSeq(p, ".") {
		if tok == "" {
			return fmt.Errorf("config.subject_prefix: %q has an empty token (a leading, trailing or double dot)", p)
		}
		for i := range len(tok) {
			if c := tok[i]; !(kept(c) && c != ':' || c == '_') {
				return fmt.Errorf("config.subject_prefix: %q holds %q: use letters, digits, '-' and '_' between the dots", p, c)
			}
		}
	}
	return nil
}

// subjects are a node's subjects under its prefix.
type subjects struct {
	prefix string // subject_prefix
}

// member is the subject of op, sent by the node whose token is from to the
// node whose token is to.
func (s subjects) member(to, from, op string) string {
	return s.prefix + "." + memberToken + "." + to + "." + from + "." + op
}

// listen is what the node whose cluster address has the token to subscribes
// to.
func (s subjects) listen(to string) string {
	return s.prefix + "." + memberToken + "." + to + ".*.*"
}

// inbox is the inbox prefix of the node whose self has the token self.
func (s subjects) inbox(self string) string {
	return s.prefix + "." + inboxToken + "." + self
}

// parse splits a member subject into the sender's address and the op.
func (s subjects) parse(subject string) (from, op string, err error) {
	rest, ok := strings.CutPrefix(subject, s.prefix+"."+memberToken+".")
	if !ok {
		return "", "", fmt.Errorf("the subject %.80q is not under %s.%s", subject, s.prefix, memberToken)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", "", fmt.Errorf("the subject %.80q has %d tokens after %s.%s, want 3", subject, len(parts), s.prefix, memberToken)
	}
	if from, err = address(parts[1]); err != nil {
		return "", "", fmt.Errorf("the sender: %w", err)
	}
	return from, parts[2], nil
}
