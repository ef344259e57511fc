package persist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/sextantd/sextant/core/healthcheck"
	"github.com/sextantd/sextant/core/naming"
)

// Version is the version of the log entries Encode writes and Apply reads.
// An entry of another version is refused whole (ErrBadEntry): a leader must
// not write a new version before every member runs code that reads it.
const Version = 1

// The entry's wire form: a JSON object {"v":1,"ops":[...]}. Its first byte
// is '{'; other first bytes are kept for other encodings.
type wireEntry struct {
	V   int      `json:"v"`
	Ops []wireOp `json:"ops"`
}

// wireOp is one op: "op" names it, and it has the fields its type uses.
type wireOp struct {
	Op         string          `json:"op"`
	Service    *wireService    `json:"service,omitempty"`    // the instance and service ops
	Instance   *wireInstance   `json:"instance,omitempty"`   // put_instance
	Address    *wireAddress    `json:"address,omitempty"`    // remove_instance, set_health
	Healthy    *bool           `json:"healthy,omitempty"`    // set_health
	Definition *wireDefinition `json:"definition,omitempty"` // put_service
	Cluster    *wireCluster    `json:"cluster,omitempty"`    // put_cluster
	Namespace  *wireNamespace  `json:"namespace,omitempty"`  // put_namespace, remove_namespace (id alone)
	Expect     string          `json:"expect,omitempty"`     // the puts: "", "absent", "present"
}

type wireService struct {
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	Name      string `json:"name"`
}

type wireAddress struct {
	IP      string `json:"ip"`
	Port    int    `json:"port"`
	Cluster string `json:"cluster"`
}

type wireInstance struct {
	IP       string            `json:"ip"`
	Port     int               `json:"port"`
	Cluster  string            `json:"cluster"`
	Weight   float64           `json:"weight"`
	Healthy  bool              `json:"healthy"`
	Enabled  bool              `json:"enabled"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

type wireDefinition struct {
	ProtectThreshold float64           `json:"protectThreshold"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	Selector         wireSelector      `json:"selector"`
}

type wireSelector struct {
	Type       string `json:"type"`
	Expression string `json:"expression,omitempty"`
}

// wireCluster is a cluster definition: Nacos's cluster parameters, the
// checker's CheckPort as checkPort.
type wireCluster struct {
	Name            string            `json:"name"`
	Checker         wireChecker       `json:"checker"`
	CheckPort       int               `json:"checkPort"`
	UseInstancePort bool              `json:"useInstancePort"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

type wireChecker struct {
	Type         string            `json:"type"`
	Path         string            `json:"path,omitempty"`
	ExpectedCode int               `json:"expectedCode,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
}

type wireNamespace struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
}

// Encode returns the log entry of ops, one batch applied in order. It does
// not validate them (Validate does): it refuses only what JSON cannot carry
// as it is (a number that is NaN or infinite, text that is not UTF-8) and
// what is not an op. An entry of more than Config.MaxOpsPerEntry ops is
// refused whole by Apply: a leader grouping writes splits them.
func Encode(ops ...Op) ([]byte, error) {
	e := wireEntry{V: Version, Ops: make([]wireOp, len(ops))}
	for i, op := range ops {
		w, err := toWire(op)
		if err != nil {
			return nil, fmt.Errorf("op %d (%T): %w", i, op, err)
		}
		e.Ops[i] = w
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func toWire(op Op) (wireOp, error) {
	if op == nil {
		return wireOp{}, errors.New("nil op")
	}
	w := wireOp{Op: op.code()}
	var floats []float64
	var texts []string
	switch op := op.(type) {
	case PutInstance:
		w.Service, w.Instance, w.Expect = serviceToWire(op.Service), instanceToWire(op.Instance), op.Expect.String()
		floats = append(floats, op.Instance.Weight)
		texts = append(texts, op.Instance.IP, op.Instance.Cluster)
		texts = appendMap(texts, op.Instance.Metadata)
	case RemoveInstance:
		w.Service, w.Address = serviceToWire(op.Service), &wireAddress{IP: op.IP, Port: op.Port, Cluster: op.Cluster}
		texts = append(texts, op.IP, op.Cluster)
	case SetHealth:
		w.Service, w.Address = serviceToWire(op.Service), &wireAddress{IP: op.IP, Port: op.Port, Cluster: op.Cluster}
		w.Healthy = &op.Healthy
		texts = append(texts, op.IP, op.Cluster)
	case PutService:
		w.Service, w.Definition, w.Expect = serviceToWire(op.Service), definitionToWire(op.Definition), op.Expect.String()
		floats = append(floats, op.Definition.ProtectThreshold)
		texts = append(texts, op.Definition.Selector.Type, op.Definition.Selector.Expression)
		texts = appendMap(texts, op.Definition.Metadata)
	case RemoveService:
		w.Service = serviceToWire(op.Service)
	case PutCluster:
		w.Service, w.Cluster = serviceToWire(op.Service), clusterToWire(op.Cluster, op.Definition)
		c := op.Definition.Checker
		texts = append(texts, op.Cluster, c.Type, c.Path)
		texts = appendMap(texts, c.Headers)
		texts = appendMap(texts, op.Definition.Metadata)
	case PutNamespace:
		w.Namespace, w.Expect = (*wireNamespace)(&op.Namespace), op.Expect.String()
		texts = append(texts, op.Namespace.ID, op.Namespace.Name, op.Namespace.Description)
	case RemoveNamespace:
		w.Namespace = &wireNamespace{ID: op.ID}
		texts = append(texts, op.ID)
	default:
		return w, fmt.Errorf("%T is not an op of this package (ops are passed as values)", op)
	}
	if svc := w.Service; svc != nil {
		texts = append(texts, svc.Namespace, svc.Group, svc.Name)
	}
	if op, ok := op.(interface{ expect() Expect }); ok && op.expect() > ExpectPresent {
		return w, fmt.Errorf("expect: unknown value %d", op.expect())
	}
	for _, f := range floats {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return w, fmt.Errorf("%v cannot be encoded", f)
		}
	}
	for _, s := range texts {
		if !utf8.ValidString(s) {
			return w, fmt.Errorf("%s is not UTF-8", quoteShort(s))
		}
	}
	return w, nil
}

func (op PutInstance) expect() Expect  { return op.Expect }
func (op PutService) expect() Expect   { return op.Expect }
func (op PutNamespace) expect() Expect { return op.Expect }

func appendMap(texts []string, m map[string]string) []string {
	for k, v := range m {
		texts = append(texts, k, v)
	}
	return texts
}

func serviceToWire(s naming.Service) *wireService {
	return &wireService{Namespace: s.Namespace, Group: s.Group, Name: s.Name}
}

func instanceToWire(i Instance) *wireInstance {
	w := wireInstance(i)
	return &w
}

func definitionToWire(d ServiceDefinition) *wireDefinition {
	return &wireDefinition{ProtectThreshold: d.ProtectThreshold, Metadata: d.Metadata,
		Selector: wireSelector{Type: d.Selector.Type, Expression: d.Selector.Expression}}
}

func clusterToWire(name string, d ClusterDefinition) *wireCluster {
	c := d.Checker
	return &wireCluster{Name: name, CheckPort: c.CheckPort, UseInstancePort: d.UseInstancePort, Metadata: d.Metadata,
		Checker: wireChecker{Type: c.Type, Path: c.Path, ExpectedCode: c.ExpectedCode, Headers: c.Headers}}
}

func clusterFromWire(w wireCluster) (string, ClusterDefinition) {
	c := w.Checker
	return w.Name, ClusterDefinition{UseInstancePort: w.UseInstancePort, Metadata: w.Metadata,
		Checker: healthcheck.Checker{Type: c.Type, Path: c.Path, ExpectedCode: c.ExpectedCode, Headers: c.Headers, CheckPort: w.CheckPort}}
}

// decoded is one op of an entry: the op, or why it could not be read.
type decoded struct {
	op  Op
	err error
}

// decode reads a log entry. An entry that is not one (not JSON of the wire
// form, another version, more than maxOps ops) is refused whole; an op of an
// unknown name, or without a part its name requires, is refused alone.
func decode(data []byte, maxOps int) ([]decoded, error) {
	if len(data) == 0 || data[0] != '{' {
		return nil, badEntry("not a JSON entry")
	}
	var e wireEntry
	if err := strictJSON(data, &e); err != nil {
		return nil, badEntry("%v", err)
	}
	if e.V != Version {
		return nil, badEntry("version %d, not %d", e.V, Version)
	}
	if len(e.Ops) > maxOps {
		return nil, badEntry("%d ops exceed the limit of %d (%s)", len(e.Ops), maxOps, LimitOpsPerEntry)
	}
	ops := make([]decoded, len(e.Ops))
	for i, w := range e.Ops {
		ops[i].op, ops[i].err = fromWire(w)
	}
	return ops, nil
}

// strictJSON decodes one JSON value, refusing unknown fields and anything
// after the value.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the entry")
	}
	return nil
}

func fromWire(w wireOp) (Op, error) {
	var svc naming.Service
	if w.Service != nil {
		svc = naming.Service{Namespace: w.Service.Namespace, Group: w.Service.Group, Name: w.Service.Name}
	}
	expect, err := parseExpect(w.Expect)
	if err != nil {
		return nil, err
	}
	switch w.Op {
	case codePutInstance:
		if w.Instance == nil {
			return nil, invalid("instance", "missing")
		}
		return PutInstance{Service: svc, Instance: Instance(*w.Instance), Expect: expect}, nil
	case codeRemoveInstance, codeSetHealth:
		var a wireAddress
		if w.Address != nil {
			a = *w.Address
		}
		if w.Op == codeRemoveInstance {
			return RemoveInstance{Service: svc, IP: a.IP, Port: a.Port, Cluster: a.Cluster}, nil
		}
		if w.Healthy == nil {
			return nil, invalid("healthy", "missing")
		}
		return SetHealth{Service: svc, IP: a.IP, Port: a.Port, Cluster: a.Cluster, Healthy: *w.Healthy}, nil
	case codePutService:
		var d ServiceDefinition
		if w.Definition != nil {
			d = ServiceDefinition{ProtectThreshold: w.Definition.ProtectThreshold, Metadata: w.Definition.Metadata,
				Selector: naming.Selector{Type: w.Definition.Selector.Type, Expression: w.Definition.Selector.Expression}}
		}
		return PutService{Service: svc, Definition: d, Expect: expect}, nil
	case codeRemoveService:
		return RemoveService{Service: svc}, nil
	case codePutCluster:
		if w.Cluster == nil {
			return nil, invalid("cluster", "missing")
		}
		name, d := clusterFromWire(*w.Cluster)
		return PutCluster{Service: svc, Cluster: name, Definition: d}, nil
	case codePutNamespace:
		var ns Namespace
		if w.Namespace != nil {
			ns = Namespace(*w.Namespace)
		}
		return PutNamespace{Namespace: ns, Expect: expect}, nil
	case codeRemoveNamespace:
		var id string
		if w.Namespace != nil {
			id = w.Namespace.ID
		}
		return RemoveNamespace{ID: id}, nil
	}
	return nil, invalid("op", "unknown op %s", quoteShort(w.Op))
}

func parseExpect(s string) (Expect, error) {
	switch s {
	case "":
		return ExpectAny, nil
	case "absent":
		return ExpectAbsent, nil
	case "present":
		return ExpectPresent, nil
	}
	return ExpectAny, invalid("expect", "%s is not one of absent, present", quoteShort(s))
}
