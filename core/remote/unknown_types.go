package remote

import (
	"strconv"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// maxUnknownTypes is how many distinct unknown request types are counted
// under their own name (sextant_client_requests_total's type label); the
// others are counted as otherUnknownType. Clients choose the type, so its
// cardinality must be bounded.
const maxUnknownTypes = 32

// maxTypeLength bounds an unknown type counted under its own name; Nacos's
// request types are Java class names of a few dozen bytes.
const maxTypeLength = 128

// otherUnknownType is the label of the unknown types beyond maxUnknownTypes,
// and of those that are not a plain class name.
const otherUnknownType = "other"

// unknownTypes names the unknown request types in the metric's label, and
// logs each once, at warn. Its zero value is ready to use.
type unknownTypes struct {
	mu        sync.Mutex
	seen      map[string]struct{}
	overflown bool // the first type beyond the bound was logged
}

// label returns the label typ is counted under, logging it the first time.
func (u *unknownTypes) label(typ string, log hclog.Logger) string {
	plain := typeName(typ)
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.seen[typ]; ok {
		return typ
	}
	if plain && len(u.seen) < maxUnknownTypes {
		if u.seen == nil {
			u.seen = make(map[string]struct{})
		}
		u.seen[typ] = struct{}{}
		log.Warn("request of an unknown type: answered with error 302 and counted under its type", "type", typ)
		return typ
	}
	if !u.overflown {
		u.overflown = true
		log.Warn("request of an unknown type: answered with error 302 and counted as type \"other\", as are "+
			"all further new unknown types (once over the bound, or not a class name)",
			"type", quoteType(typ), "bound", maxUnknownTypes)
	}
	return otherUnknownType
}

// typeName reports whether typ looks like a request class name: 1 to
// maxTypeLength letters, digits, '_', '.' or '$', and not "other".
func typeName(typ string) bool {
	if typ == "" || len(typ) > maxTypeLength || typ == otherUnknownType {
		return false
	}
	for i := 0; i < len(typ); i++ {
		b := typ[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.' || b == '$') {
			return false
		}
	}
	return true
}

// quoteType quotes a type for a log line, cut to its first 64 bytes.
func quoteType(s string) string {
	const most = 64
	if len(s) > most {
		return strconv.Quote(s[:most]) + "..."
	}
	return strconv.Quote(s)
}
