package persist

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sextantd/sextant/core/naming"
)

// A Response crosses the cluster when a follower forwards a write to the
// leader: EncodeResponse (the consensus node's EncodeResult) writes it, and
// DecodeResponse gives the writer back errors that match what Apply
// returned under errors.Is and errors.As — the same sentinels, and the same
// *naming.InvalidError with its field and limit.

// wireResponse is a Response as JSON.
type wireResponse struct {
	Index   uint64       `json:"index"`
	Err     *wireError   `json:"err,omitempty"`
	Results []*wireError `json:"results,omitempty"`
}

// wireError is a refusal: an invalid input (Field, Limit), or a state
// refusal wrapping the sentinels Kinds names.
type wireError struct {
	Message string   `json:"message"`
	Field   string   `json:"field,omitempty"`
	Limit   string   `json:"limit,omitempty"`
	Kinds   []string `json:"kinds,omitempty"`
}

// sentinels are the errors a refusal may wrap, by their name on the wire.
var sentinels = []struct {
	name string
	err  error
}{
	{"not_found", ErrNotFound},
	{"exists", ErrExists},
	{"namespace_not_empty", ErrNamespaceNotEmpty},
	{"public_namespace", ErrPublicNamespace},
	{"bad_entry", ErrBadEntry},
	{"service_not_found", naming.ErrServiceNotFound},
	{"service_exists", naming.ErrServiceExists},
	{"service_not_empty", naming.ErrServiceNotEmpty},
	{"instance_not_found", naming.ErrInstanceNotFound},
}

// EncodeResponse encodes what Apply returned for an entry (a Response).
func EncodeResponse(v any) ([]byte, error) {
	r, ok := v.(Response)
	if !ok {
		return nil, fmt.Errorf("persist: cannot encode a %T as a response", v)
	}
	w := wireResponse{Index: r.Index, Err: errorToWire(r.Err)}
	if r.Results != nil {
		w.Results = make([]*wireError, len(r.Results))
		for i, err := range r.Results {
			w.Results[i] = errorToWire(err)
		}
	}
	return json.Marshal(w)
}

// DecodeResponse decodes what EncodeResponse wrote.
func DecodeResponse(b []byte) (Response, error) {
	var w wireResponse
	if err := json.Unmarshal(b, &w); err != nil {
		return Response{}, fmt.Errorf("persist: decoding a response: %w", err)
	}
	r := Response{Index: w.Index, Err: errorFromWire(w.Err)}
	if w.Results != nil {
		r.Results = make([]error, len(w.Results))
		for i, e := range w.Results {
			r.Results[i] = errorFromWire(e)
		}
	}
	return r, nil
}

func errorToWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Message: err.Error()}
	if inv, ok := errors.AsType[*naming.InvalidError](err); ok {
		w.Field, w.Limit, w.Message = inv.Field, inv.Limit, inv.Reason
		return w
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			w.Kinds = append(w.Kinds, s.name)
		}
	}
	return w
}

func errorFromWire(w *wireError) error {
	if w == nil {
		return nil
	}
	if w.Field != "" {
		return &naming.InvalidError{Field: w.Field, Reason: w.Message, Limit: w.Limit}
	}
	var errs []error
	for _, name := range w.Kinds {
		for _, s := range sentinels {
			if s.name == name {
				errs = append(errs, s.err)
			}
		}
	}
	return refuse(w.Message, errs...)
}
