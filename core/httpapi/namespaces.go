package httpapi

import (
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/core/auth"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
)

// The console's namespaces, as Nacos 2.x's NamespaceController serves them
// under /nacos/v1/console/namespaces:
//
//   - GET: {"code":200,"message":null,"data":[...]}, public first (id ""),
//     then, sorted by id, the namespaces created in the store (with their
//     name and description) and those that hold anything in the registry
//     without having been created (named by their id, no description). Any
//     user's token with auth on, listing the namespaces it may read.
//   - GET ?show=all&namespaceId=ID: that namespace alone, bare; 404 if it
//     neither was created nor holds anything.
//   - GET ?checkNamespaceIdExist=true&customNamespaceId=ID (Nacos's form),
//     and GET /exist?customNamespaceId=ID: true when ID was created (or is
//     public), false otherwise (blank included), bare. The namespace's read
//     access with auth on.
//   - POST customNamespaceId (blank: a random UUID, as Nacos), namespaceName
//     (required), namespaceDesc: creates it; true.
//   - PUT namespace, namespaceShowName (required), namespaceDesc: replaces
//     its name and description (an absent description is cleared, as in
//     Nacos); true. A namespace that holds something without having been
//     created is created by it.
//   - DELETE namespaceId: removes it; true. Refused (400) while it holds a
//     service (defined, or with instances of any kind).
//
// The writes need a global admin's token with auth on (Nacos secures them
// as the console's namespaces resource) and the store (Config.Store; 501
// without it). Where Nacos answers false for a refused write, this answers
// the refusal's status with a message naming the parameter: 400 for bad
// input, an existing id, the public namespace or one not empty, 404 for an
// update or delete of a namespace that does not exist (Nacos answers true
// and does nothing), 503 without a Raft quorum.

// namespaceJSON is one namespace as the console lists it (Nacos's
// Namespace).
type namespaceJSON struct {
	Namespace         string  `json:"namespace"`
	NamespaceShowName string  `json:"namespaceShowName"`
	NamespaceDesc     *string `json:"namespaceDesc"`
	Quota             int     `json:"quota"`
	ConfigCount       int     `json:"configCount"`
	Type              int     `json:"type"`
}

// The console's namespace types and default quota.
const (
	namespaceGlobal  = 0
	namespaceCustom  = 2
	namespaceQuota   = 200
	consoleNamespace = "/nacos/v1/console/namespaces"
)

// publicNamespaceJSON is the public namespace as the console lists it.
var publicNamespaceJSON = namespaceJSON{Namespace: "", NamespaceShowName: naming.DefaultNamespace, Quota: namespaceQuota, Type: namespaceGlobal}

// storedNamespaceJSON is a namespace created in the store.
func storedNamespaceJSON(ns persist.Namespace) namespaceJSON {
	j := namespaceJSON{Namespace: ns.ID, NamespaceShowName: ns.Name, Quota: namespaceQuota, Type: namespaceCustom}
	if ns.Description != "" {
		desc := ns.Description
		j.NamespaceDesc = &desc
	}
	return j
}

// implicitNamespaceJSON is a namespace that holds something in the registry
// without having been created.
func implicitNamespaceJSON(id string) namespaceJSON {
	return namespaceJSON{Namespace: id, NamespaceShowName: id, Quota: namespaceQuota, Type: namespaceCustom}
}

// namespaceAPI serves the console's namespaces.
type namespaceAPI struct {
	reg     *naming.Registry
	store   *persist.Store // nil: the writes answer 501
	auth    *auth.Authority
	log     hclog.Logger
	maxBody int64
}

// consoleHandler serves one namespace request: its answer, encoded as JSON,
// or its refusal (an *apiError, or what toAPIError maps).
type consoleHandler func(r *http.Request, p params) (any, error)

// registerNamespaces adds the console's namespace endpoints to mux.
func registerNamespaces(mux *http.ServeMux, cfg Config) {
	ns := &namespaceAPI{reg: cfg.Registry, store: cfg.Store, auth: cfg.Auth, log: cfg.Logger.Named("namespaces"),
		maxBody: maxNamingBody(cfg.Registry.Limits())}
	readOf := func(param string) func(http.Handler) http.Handler {
		return func(h http.Handler) http.Handler {
			return RequireAccess(cfg.Auth, auth.Read, func(r *http.Request) string { return r.FormValue(param) }, h)
		}
	}
	admin := func(h http.Handler) http.Handler { return RequireAdmin(cfg.Auth, h) }
	open := func(h http.Handler) http.Handler { return h }
	list := ns.serve(ns.list, open) // checks the token itself
	detail := ns.serve(ns.detail, readOf("namespaceId"))
	exist := ns.serve(ns.exist, readOf("customNamespaceId"))
	mux.Handle("GET "+consoleNamespace, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("show") == "all":
			detail.ServeHTTP(w, r)
		case q.Get("checkNamespaceIdExist") == "true":
			exist.ServeHTTP(w, r)
		default:
			list.ServeHTTP(w, r)
		}
	}))
	mux.Handle("GET "+consoleNamespace+"/exist", exist)
	mux.Handle("POST "+consoleNamespace, ns.serve(ns.create, admin))
	mux.Handle("PUT "+consoleNamespace, ns.serve(ns.update, admin))
	mux.Handle("DELETE "+consoleNamespace, ns.serve(ns.remove, admin))
}

// serve reads the request's parameters (bounded), checks its token with
// guard, runs h and writes its answer as JSON, or its refusal as text with
// its status (as Nacos 1.x's console answers).
func (ns *namespaceAPI) serve(h consoleHandler, guard func(http.Handler) http.Handler) http.Handler {
	fail := func(w http.ResponseWriter, r *http.Request, err error) {
		api := toAPIError(err, nil)
		if api.status >= http.StatusInternalServerError {
			ns.log.Warn("namespace request failed", "method", r.Method, "error", err)
		}
		http.Error(w, api.msg, api.status)
	}
	guarded := guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := h(r, params(r.Form))
		if err != nil {
			fail(w, r, err)
			return
		}
		writeJSON(w, v)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := readParams(w, r, ns.maxBody); err != nil {
			fail(w, r, err)
			return
		}
		if t := r.PostForm.Get(auth.TokenHeader); t != "" && r.Header.Get(auth.TokenHeader) == "" {
			r.Header.Set(auth.TokenHeader, t)
		}
		guarded.ServeHTTP(w, r)
	})
}

// list: GET /nacos/v1/console/namespaces.
func (ns *namespaceAPI) list(r *http.Request, _ params) (any, error) {
	can := func(string) bool { return true }
	if ns.auth != nil {
		id, err := ns.auth.Authenticate(TokenFrom(r))
		if err != nil {
			return nil, &apiError{status: http.StatusForbidden, code: codeParameterValidate, msg: err.Error()}
		}
		can = func(ns string) bool { return id.Can(ns, auth.Read) }
	}
	found := map[string]namespaceJSON{}
	for _, id := range ns.reg.Namespaces() {
		found[id] = implicitNamespaceJSON(id)
	}
	if ns.store != nil {
		for _, n := range ns.store.FSM().Namespaces() {
			found[n.ID] = storedNamespaceJSON(n)
		}
	}
	delete(found, naming.DefaultNamespace)
	list := []namespaceJSON{publicNamespaceJSON}
	for _, id := range slices.Sorted(maps.Keys(found)) {
		if can(id) {
			list = append(list, found[id])
		}
	}
	return nacosResult{Code: http.StatusOK, Data: list}, nil
}

// detail: GET /nacos/v1/console/namespaces?show=all&namespaceId=ID.
func (ns *namespaceAPI) detail(_ *http.Request, p params) (any, error) {
	id := strings.TrimSpace(p.str("namespaceId"))
	if id == "" || id == naming.DefaultNamespace {
		return publicNamespaceJSON, nil
	}
	if ns.store != nil {
		if n, ok := ns.store.FSM().Namespace(id); ok {
			return storedNamespaceJSON(n), nil
		}
	}
	if slices.Contains(ns.reg.Namespaces(), id) {
		return implicitNamespaceJSON(id), nil
	}
	return nil, namespaceError(persist.ErrNotFound, "namespaceId", id, nil)
}

// exist: whether customNamespaceId names a namespace that was created (or
// the public one).
func (ns *namespaceAPI) exist(_ *http.Request, p params) (any, error) {
	id := strings.TrimSpace(p.str("customNamespaceId"))
	switch {
	case id == "":
		return false, nil
	case ns.store == nil:
		return id == naming.DefaultNamespace, nil
	}
	_, ok := ns.store.FSM().Namespace(id)
	return ok, nil
}

// create: POST /nacos/v1/console/namespaces.
func (ns *namespaceAPI) create(r *http.Request, p params) (any, error) {
	name, err := p.required("namespaceName")
	if err != nil {
		return nil, err
	}
	if ns.store == nil {
		return nil, errNoStore("customNamespaceId", "namespaces")
	}
	id := strings.TrimSpace(p.str("customNamespaceId"))
	if id == "" {
		id = newNamespaceID()
	}
	n := persist.Namespace{ID: id, Name: name, Description: p.str("namespaceDesc")}
	if err := ns.store.Do(r.Context(), persist.PutNamespace{Namespace: n, Expect: persist.ExpectAbsent}); err != nil {
		return nil, namespaceError(err, "customNamespaceId", id, renames{"namespaceId": "customNamespaceId"})
	}
	return true, nil
}

// update: PUT /nacos/v1/console/namespaces.
func (ns *namespaceAPI) update(r *http.Request, p params) (any, error) {
	id, err := p.required("namespace")
	if err != nil {
		return nil, err
	}
	name, err := p.required("namespaceShowName")
	if err != nil {
		return nil, err
	}
	if ns.store == nil {
		return nil, errNoStore("namespace", "namespaces")
	}
	rn := renames{"namespaceId": "namespace", "namespaceName": "namespaceShowName"}
	n := persist.Namespace{ID: strings.TrimSpace(id), Name: name, Description: p.str("namespaceDesc")}
	expect := persist.ExpectPresent
	if _, ok := ns.store.FSM().Namespace(n.ID); !ok {
		// One that holds something without having been created exists
		// for the console too: naming it creates it.
		if _, err := persist.Validate(ns.store.FSM().Limits(), persist.PutNamespace{Namespace: n}); err != nil {
			return nil, namespaceError(err, "namespace", n.ID, rn)
		}
		if !slices.Contains(ns.reg.Namespaces(), n.ID) {
			return nil, namespaceError(persist.ErrNotFound, "namespace", n.ID, rn)
		}
		expect = persist.ExpectAny
	}
	if err := ns.store.Do(r.Context(), persist.PutNamespace{Namespace: n, Expect: expect}); err != nil {
		return nil, namespaceError(err, "namespace", n.ID, rn)
	}
	return true, nil
}

// remove: DELETE /nacos/v1/console/namespaces.
func (ns *namespaceAPI) remove(r *http.Request, p params) (any, error) {
	id, err := p.required("namespaceId")
	if err != nil {
		return nil, err
	}
	if ns.store == nil {
		return nil, errNoStore("namespaceId", "namespaces")
	}
	id = strings.TrimSpace(id)
	if _, err := persist.Validate(ns.store.FSM().Limits(), persist.RemoveNamespace{ID: id}); err != nil {
		return nil, namespaceError(err, "namespaceId", id, nil)
	}
	// The store refuses while it holds a service of the namespace; the
	// registry tells of the services with ephemeral instances.
	if svcs, err := ns.reg.Services(id); err != nil {
		return nil, err
	} else if len(svcs) > 0 {
		return nil, &apiError{status: http.StatusBadRequest, code: codeParameterValidate, msg: fmt.Sprintf(
			"namespaceId: namespace %s holds %d services (defined, or with instances); delete them and deregister their instances first",
			quote(id), len(svcs))}
	}
	if err := ns.store.Do(r.Context(), persist.RemoveNamespace{ID: id}); err != nil {
		return nil, namespaceError(err, "namespaceId", id, nil)
	}
	return true, nil
}

// namespaceError turns the store's refusal of a namespace operation into
// one naming param, the request's parameter holding the namespace's id;
// rn renames the other fields.
func namespaceError(err error, param, id string, rn renames) error {
	refuse := func(status, code int, what string) error {
		return &apiError{status: status, code: code, msg: param + ": namespace " + quote(id) + " " + what}
	}
	switch {
	case errors.Is(err, persist.ErrExists):
		return refuse(http.StatusBadRequest, codeParameterValidate, "already exists")
	case errors.Is(err, persist.ErrNotFound):
		return refuse(http.StatusNotFound, codeResourceNotFound, "not found")
	case errors.Is(err, persist.ErrPublicNamespace):
		return refuse(http.StatusBadRequest, codeParameterValidate, "is the public namespace, which is built in and cannot be changed or removed")
	case errors.Is(err, persist.ErrNamespaceNotEmpty):
		return &apiError{status: http.StatusBadRequest, code: codeParameterValidate, msg: param + ": " + err.Error()}
	}
	return toAPIError(err, rn)
}

// newNamespaceID returns a random (version 4) UUID, the id Nacos gives a
// namespace created without one.
func newNamespaceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
