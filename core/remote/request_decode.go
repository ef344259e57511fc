package remote

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The requests clients send most (registrations, queries, subscriptions,
// health checks) are decoded here in one pass without reflection: with
// encoding/json, decoding took most of a registration's own cost. The fast
// path takes only what it decodes exactly as encoding/json would — exact key
// names, strings without escapes, integers without fraction or exponent,
// each known key once — and gives up on anything else (a key matching a
// field only case-insensitively, an escape, null where it would have to
// know what encoding/json makes of it, a type mismatch, a syntax error): the
// caller then decodes the body with encoding/json, which also words the
// errors. FuzzFastDecode checks the two agree.

// fastDecoder is a request that decodes the usual bodies itself; it reports
// false, with the request in any state, when encoding/json must decode the
// body instead.
type fastDecoder interface{ decodeFast(body []byte) bool }

// maxSkipDepth bounds the nesting of the unknown values the fast path skips;
// deeper ones are left to encoding/json.
const maxSkipDepth = 32

// jsonScanner reads a JSON text from b[i:].
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips white space and then c, if c is next.
func (s *jsonScanner) consume(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// peek returns the next byte after white space (0 at the end).
func (s *jsonScanner) peek() byte {
	s.space()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// end reports whether only white space is left.
func (s *jsonScanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// literal consumes the literal word (true, false, null) if it is next.
func (s *jsonScanner) literal(word string) bool {
	s.space()
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// rawString reads a string of valid UTF-8 without escapes and returns its
// bytes, which alias the body.
func (s *jsonScanner) rawString() ([]byte, bool) {
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start, ascii := s.i+1, true
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[start:j]
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			s.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// str decodes a string into *dst; null leaves it as it is.
func (s *jsonScanner) str(dst *string) bool {
	if s.peek() == 'n' {
		return s.literal("null")
	}
	v, ok := s.rawString()
	if ok {
		*dst = intern(v)
	}
	return ok
}

// intern returns the values most requests repeat without allocating them.
func intern(v []byte) string {
	switch string(v) {
	case "":
		return ""
	case "public":
		return "public"
	case "DEFAULT_GROUP":
		return "DEFAULT_GROUP"
	case "DEFAULT":
		return "DEFAULT"
	case opRegister:
		return opRegister
	case opDeregister:
		return opDeregister
	}
	return string(v)
}

// boolean decodes true or false into *dst; null leaves it as it is.
func (s *jsonScanner) boolean(dst *bool) bool {
	switch s.peek() {
	case 't':
		*dst = true
		return s.literal("true")
	case 'f':
		*dst = false
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	return false
}

// number reads a JSON number and returns its text.
func (s *jsonScanner) number() ([]byte, bool) {
	s.space()
	b, j := s.b, s.i
	digits := func() bool {
		start := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j > start
	}
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case !digits():
		return nil, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if !digits() {
			return nil, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if !digits() {
			return nil, false
		}
	}
	v := b[s.i:j]
	s.i = j
	return v, true
}

// integer decodes an integer of up to 18 digits into *dst; null leaves it
// as it is.
func (s *jsonScanner) integer(dst *int) bool {
	if s.peek() == 'n' {
		return s.literal("null")
	}
	v, ok := s.number()
	if !ok {
		return false
	}
	neg := v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) > 18 {
		return false
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return false // a fraction or an exponent: encoding/json refuses it
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	*dst = n
	return true
}

// float decodes a number into *dst; null leaves it as it is.
func (s *jsonScanner) float(dst *float64) bool {
	if s.peek() == 'n' {
		return s.literal("null")
	}
	v, ok := s.number()
	if !ok {
		return false
	}
	if len(v) <= 15 && v[0] != '-' {
		n, whole := 0, true
		for _, c := range v {
			if c < '0' || c > '9' {
				whole = false
				break
			}
			n = n*10 + int(c-'0')
		}
		if whole { // exact in a float64
			*dst = float64(n)
			return true
		}
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return false
	}
	*dst = f
	return true
}

// object reads an object, calling field for each key with the scanner at
// its value; field reads the value. seen counts keys against known, the
// struct's JSON field names: a known key twice, or a key that equals one
// only case-insensitively (which encoding/json would also take), gives up.
// Unknown keys' values are skipped.
func (s *jsonScanner) object(known []string, field func(key int) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	var seen uint32
	for {
		k, ok := s.rawString()
		if !ok || !s.consume(':') {
			return false
		}
		i := keyIndex(known, k)
		switch {
		case i >= 0:
			if seen&(1<<i) != 0 || !field(i) {
				return false
			}
			seen |= 1 << i
		case foldsToKnown(known, k):
			return false
		case !s.skip(0):
			return false
		}
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

func keyIndex(known []string, k []byte) int {
	for i, name := range known {
		if name == string(k) {
			return i
		}
	}
	return -1
}

// foldsToKnown reports whether k equals a known name case-insensitively,
// as encoding/json matches keys (Unicode folding: "ſ" is "s").
func foldsToKnown(known []string, k []byte) bool {
	for _, c := range k {
		if c >= utf8.RuneSelf {
			for _, name := range known {
				if strings.EqualFold(name, string(k)) {
					return true
				}
			}
			return false
		}
	}
	// ASCII folds only to names as long (the known names are ASCII).
	for _, name := range known {
		if len(name) == len(k) && asciiEqualFold(name, k) {
			return true
		}
	}
	return false
}

func asciiEqualFold(a string, b []byte) bool {
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// skip reads any value, checking its syntax, nested at most maxSkipDepth.
func (s *jsonScanner) skip(depth int) bool {
	if depth > maxSkipDepth {
		return false
	}
	switch s.peek() {
	case '"':
		return s.skipString()
	case '{':
		s.i++
		if s.consume('}') {
			return true
		}
		for {
			if !s.skipString() || !s.consume(':') || !s.skip(depth+1) {
				return false
			}
			if s.consume(',') {
				continue
			}
			return s.consume('}')
		}
	case '[':
		s.i++
		if s.consume(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			if s.consume(',') {
				continue
			}
			return s.consume(']')
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, ok := s.number()
	return ok
}

// skipString reads any string, escapes included, checking its syntax.
func (s *jsonScanner) skipString() bool {
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(s.b) {
				return false
			}
			switch s.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s.b) {
					return false
				}
				for _, h := range s.b[j+1 : j+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

// The JSON field names of each request the fast path decodes, in the
// order of the indexes its field functions switch on; the first four are
// namingRequest's.
var (
	namingKeys    = []string{"requestId", "namespace", "serviceName", "groupName"}
	instanceKeys  = append(namingKeys[:4:4], "type", "instance")
	queryKeys     = append(namingKeys[:4:4], "cluster", "healthyOnly")
	subscribeKeys = append(namingKeys[:4:4], "subscribe", "clusters")
	healthKeys    = namingKeys[:1]
	answerKeys    = []string{"requestId", "resultCode", "errorCode", "message"}
	wireInstKeys  = []string{"instanceId", "ip", "port", "weight", "healthy", "enabled", "ephemeral", "clusterName", "metadata"}
)

// namingField decodes field i of namingKeys into r.
func (s *jsonScanner) namingField(r *namingRequest, i int) bool {
	switch i {
	case 0:
		return s.str(&r.RequestID)
	case 1:
		return s.str(&r.Namespace)
	case 2:
		return s.str(&r.ServiceName)
	default:
		return s.str(&r.GroupName)
	}
}

func (r *healthCheckRequest) decodeFast(body []byte) bool {
	s := jsonScanner{b: body}
	return s.object(healthKeys, func(int) bool { return s.str(&r.RequestID) }) && s.end()
}

func (r *instanceRequest) decodeFast(body []byte) bool {
	s := jsonScanner{b: body}
	return s.object(instanceKeys, func(i int) bool {
		switch i {
		case 4:
			return s.str(&r.Type)
		case 5:
			if s.peek() == 'n' {
				r.Instance = nil
				return s.literal("null")
			}
			r.Instance = new(wireInstance)
			return s.instance(r.Instance)
		}
		return s.namingField(&r.namingRequest, i)
	}) && s.end()
}

func (r *serviceQueryRequest) decodeFast(body []byte) bool {
	s := jsonScanner{b: body}
	return s.object(queryKeys, func(i int) bool {
		switch i {
		case 4:
			return s.str(&r.Cluster)
		case 5:
			return s.boolean(&r.HealthyOnly)
		}
		return s.namingField(&r.namingRequest, i)
	}) && s.end()
}

func (r *subscribeServiceRequest) decodeFast(body []byte) bool {
	s := jsonScanner{b: body}
	return s.object(subscribeKeys, func(i int) bool {
		switch i {
		case 4:
			return s.boolean(&r.Subscribe)
		case 5:
			return s.str(&r.Clusters)
		}
		return s.namingField(&r.namingRequest, i)
	}) && s.end()
}

// decodeFast decodes a client's answer to a server request (a push's
// acknowledgement, most often), as the fast path decodes requests.
func (a *clientAnswer) decodeFast(body []byte) bool {
	s := jsonScanner{b: body}
	return s.object(answerKeys, func(i int) bool {
		switch i {
		case 0:
			return s.str(&a.RequestID)
		case 1:
			return s.integer(&a.ResultCode)
		case 2:
			return s.integer(&a.ErrorCode)
		}
		return s.str(&a.Message)
	}) && s.end()
}

// instance decodes an instance object into w.
func (s *jsonScanner) instance(w *wireInstance) bool {
	return s.object(wireInstKeys, func(i int) bool {
		switch i {
		case 0:
			return s.str(&w.InstanceID)
		case 1:
			return s.str(&w.IP)
		case 2:
			return s.integer(&w.Port)
		case 3:
			return s.float(&w.Weight)
		case 4:
			return s.boolean(&w.Healthy)
		case 5:
			return s.boolean(&w.Enabled)
		case 6:
			return s.boolean(&w.Ephemeral)
		case 7:
			return s.str(&w.ClusterName)
		default:
			return s.metadata(&w.Metadata)
		}
	})
}

// metadata decodes an object of strings into a new map; null leaves *dst
// as it is. A null value is left to encoding/json.
func (s *jsonScanner) metadata(dst *map[string]string) bool {
	if s.peek() == 'n' {
		return s.literal("null")
	}
	if !s.consume('{') {
		return false
	}
	m := make(map[string]string)
	*dst = m
	if s.consume('}') {
		return true
	}
	for {
		k, ok := s.rawString()
		if !ok || !s.consume(':') {
			return false
		}
		v, ok := s.rawString()
		if !ok {
			return false
		}
		m[string(k)] = string(v)
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}
