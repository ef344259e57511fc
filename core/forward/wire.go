package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sextantd/sextant/core/cluster"
	"github.com/sextantd/sextant/core/naming"
)

// What members say to each other under Kind: one JSON message, one JSON
// answer. Everything in them is input: the ops and ids are checked here,
// what a write or a handoff carries is validated by the registry as a
// request is, and a node acts only as its own view of the membership says.

// The ops of a message.
const (
	opWrite   = "write"   // apply this write: you are responsible for its client
	opRelease = "release" // give up these clients to me: I am responsible for them
	opAdopt   = "adopt"   // take these clients, which I gave up to you
	opMoved   = "moved"   // I adopted these clients: re-home your replicas
)

// message is a request.
type message struct {
	Op      string       `json:"op"`
	Write   *wireWrite   `json:"write,omitempty"`
	IDs     []string     `json:"ids,omitempty"`     // release
	Clients []wireClient `json:"clients,omitempty"` // adopt
	Moved   []move       `json:"moved,omitempty"`
}

// answer is the answer to a message.
type answer struct {
	Error  *wireError  `json:"error,omitempty"`
	Result *wireResult `json:"result,omitempty"` // write
	// Status is, per client id, what a release or an adopt did.
	Status   map[string]string `json:"status,omitempty"`
	Released []wireClient      `json:"released,omitempty"` // release
}

// The statuses of a client in a release or an adopt.
const (
	statusReleased = "released" // release: here it is, now a replica of yours
	statusNotHeld  = "not_held" // release: not a client of mine
	statusAdopted  = "adopted"  // adopt: mine now
	statusKept     = "kept"     // adopt: it already was mine; I kept my own
	statusRefused  = "refused"  // either: I do not see you (release) or me (adopt) responsible, or it is invalid
)

type wireService struct {
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	Name      string `json:"name"`
}

type wireInstance struct {
	IP       string            `json:"ip"`
	Port     int               `json:"port"`
	Cluster  string            `json:"cluster,omitempty"`
	Weight   float64           `json:"weight"`
	Healthy  bool              `json:"healthy"`
	Enabled  bool              `json:"enabled"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// wireWrite is a Write.
type wireWrite struct {
	Op       string        `json:"op"`
	Service  wireService   `json:"service"`
	Instance wireInstance  `json:"instance"`
	Weight   *float64      `json:"weight,omitempty"`   // update
	Enabled  *bool         `json:"enabled,omitempty"`  // update
	Metadata *wireMetadata `json:"metadata,omitempty"` // update: replaces the metadata when present
	Body     *wireInstance `json:"body,omitempty"`     // beat
}

type wireMetadata struct {
	Values map[string]string `json:"values"`
}

type wireResult struct {
	Instance wireInstance `json:"instance"`
	Found    bool         `json:"found"`
}

// wireClient is an HTTP client that moves.
type wireClient struct {
	ID        string             `json:"id"`
	Revision  uint64             `json:"revision"`
	Instances []wireHandoffEntry `json:"instances"`
}

type wireHandoffEntry struct {
	Service  wireService  `json:"service"`
	Instance wireInstance `json:"instance"`
	SilentMs int64        `json:"silentMs"`
}

// The kinds of a wireError.
const (
	errInvalid        = "invalid"         // the registry refused the write: Field, Reason, Limit
	errNotFound       = "not_found"       // naming.ErrInstanceNotFound
	errNotResponsible = "not_responsible" // this node sees Owner responsible
	errUnavailable    = "unavailable"     // cannot be applied now: Message
	errFailed         = "failed"          // anything else: Message
)

type wireError struct {
	Kind    string `json:"kind"`
	Field   string `json:"field,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Limit   string `json:"limit,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Message string `json:"message,omitempty"`
}

func errorToWire(err error) *wireError {
	var invalid *naming.InvalidError
	var unavailable *UnavailableError
	switch {
	case errors.As(err, &invalid):
		return &wireError{Kind: errInvalid, Field: invalid.Field, Reason: invalid.Reason, Limit: invalid.Limit}
	case errors.Is(err, naming.ErrInstanceNotFound):
		return &wireError{Kind: errNotFound}
	case errors.As(err, &unavailable):
		return &wireError{Kind: errUnavailable, Message: unavailable.Reason}
	}
	return &wireError{Kind: errFailed, Message: err.Error()}
}

// err is the error the responsible node node answered about client id.
func (e *wireError) err(id, node string) error {
	switch e.Kind {
	case errInvalid:
		return &naming.InvalidError{Field: e.Field, Reason: e.Reason, Limit: e.Limit}
	case errNotFound:
		return naming.ErrInstanceNotFound
	case errNotResponsible:
		return &UnavailableError{ClientID: id, Node: node, Reason: "does not see itself responsible for it yet (it sees " + quote(e.Owner) + "): the members' views of the cluster differ for a moment", disagreed: true, resend: true}
	case errUnavailable:
		return &UnavailableError{ClientID: id, Node: node, Reason: quote(e.Message)}
	}
	return fmt.Errorf("node %s: %s", node, quote(e.Message))
}

// quote cuts what a member said to 256 bytes, for a message of this node.
func quote(s string) string {
	const most = 256
	if len(s) > most {
		s = s[:most] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

func serviceToWire(s naming.Service) wireService {
	return wireService{Namespace: s.Namespace, Group: s.Group, Name: s.Name}
}

func (s wireService) service() naming.Service {
	return naming.Service{Namespace: s.Namespace, Group: s.Group, Name: s.Name}
}

func instanceToWire(in naming.Instance) wireInstance {
	return wireInstance{IP: in.IP, Port: in.Port, Cluster: in.Cluster, Weight: in.Weight, Healthy: in.Healthy, Enabled: in.Enabled, Metadata: in.Metadata}
}

// instance is the instance a member described; its id is the registry's to
// set, and an HTTP client's instances are ephemeral.
func (in wireInstance) instance() naming.Instance {
	return naming.Instance{IP: in.IP, Port: in.Port, Cluster: in.Cluster, Weight: in.Weight, Healthy: in.Healthy, Enabled: in.Enabled,
		Ephemeral: true, Metadata: in.Metadata}
}

func writeToWire(w Write) *wireWrite {
	ww := &wireWrite{Op: string(w.Op), Service: serviceToWire(w.Service), Instance: instanceToWire(w.Instance),
		Weight: w.Update.Weight, Enabled: w.Update.Enabled}
	if w.Update.Metadata != nil {
		ww.Metadata = &wireMetadata{Values: w.Update.Metadata}
	}
	if w.Body != nil {
		b := instanceToWire(*w.Body)
		ww.Body = &b
	}
	return ww
}

// write is the Write a member forwarded; what it names is checked by the
// registry when applied.
func (ww *wireWrite) write() (Write, error) {
	if ww == nil {
		return Write{}, &naming.InvalidError{Field: "write", Reason: "missing"}
	}
	w := Write{Op: Op(ww.Op), Service: ww.Service.service(), Instance: ww.Instance.instance()}
	switch w.Op {
	case Register, Deregister, Beat:
	case Update:
		w.Update = naming.InstanceUpdate{Weight: ww.Weight, Enabled: ww.Enabled}
		if ww.Metadata != nil {
			w.Update.Metadata = ww.Metadata.Values
			if w.Update.Metadata == nil {
				w.Update.Metadata = map[string]string{}
			}
		}
	default:
		return Write{}, &naming.InvalidError{Field: "op", Reason: fmt.Sprintf("%q is not a write", quote(ww.Op))}
	}
	if ww.Body != nil {
		if w.Op != Beat {
			return Write{}, &naming.InvalidError{Field: "body", Reason: "only a beat has a body"}
		}
		b := ww.Body.instance()
		if b.IP != w.Instance.IP || b.Port != w.Instance.Port {
			return Write{}, &naming.InvalidError{Field: "beat", Reason: "the body describes another address than the beat's"}
		}
		w.Body = &b
	}
	return w, nil
}

func handoffToWire(id string, h naming.HTTPHandoff) wireClient {
	c := wireClient{ID: id, Revision: h.Revision, Instances: make([]wireHandoffEntry, len(h.Instances))}
	for i, in := range h.Instances {
		c.Instances[i] = wireHandoffEntry{Service: serviceToWire(in.Service), Instance: instanceToWire(in.Instance), SilentMs: in.Silent.Milliseconds()}
	}
	return c
}

// handoff is what a member gave up; AdoptHTTP validates its instances.
func (c wireClient) handoff() naming.HTTPHandoff {
	h := naming.HTTPHandoff{Revision: c.Revision, Instances: make([]naming.HandoffInstance, len(c.Instances))}
	for i, e := range c.Instances {
		silent := time.Duration(max(0, min(e.SilentMs, int64(24*time.Hour/time.Millisecond)))) * time.Millisecond
		h.Instances[i] = naming.HandoffInstance{Service: e.Service.service(), Instance: e.Instance.instance(), Silent: silent}
	}
	return h
}

// call sends msg to member and decodes its answer into ans.
func (f *Forwarder) call(ctx context.Context, member string, msg message, timeout time.Duration, ans *answer) error {
	target, err := cluster.Address(member)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := f.cfg.Transport.Call(ctx, target, Kind, payload)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, ans); err != nil {
		return fmt.Errorf("the answer of %s: %w", member, err)
	}
	return nil
}

// handle answers a message a member sent.
func (f *Forwarder) handle(ctx context.Context, from string, payload []byte) ([]byte, error) {
	var msg message
	if err := json.Unmarshal(payload, &msg); err != nil {
		return nil, fmt.Errorf("forward: a message from %s that is not one: %w", from, err)
	}
	var ans answer
	switch msg.Op {
	case opWrite:
		ans = f.serveWrite(ctx, from, msg.Write)
	case opRelease:
		if len(msg.IDs) > maxBatch {
			return nil, fmt.Errorf("forward: %s asked for %d clients at once, more than %d", from, len(msg.IDs), maxBatch)
		}
		ans = f.serveRelease(ctx, from, msg.IDs)
	case opAdopt:
		if len(msg.Clients) > maxBatch {
			return nil, fmt.Errorf("forward: %s handed over %d clients at once, more than %d", from, len(msg.Clients), maxBatch)
		}
		ans = f.serveAdopt(ctx, from, msg.Clients)
	case opMoved:
		if len(msg.Moved) > maxBatch {
			return nil, fmt.Errorf("forward: %s moved %d clients at once, more than %d", from, len(msg.Moved), maxBatch)
		}
		f.serveMoved(from, msg.Moved)
	default:
		return nil, fmt.Errorf("forward: %s sent an unknown op %q", from, quote(msg.Op))
	}
	return json.Marshal(ans)
}
