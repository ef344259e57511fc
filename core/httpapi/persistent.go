package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/sextantd/sextant/core/consensus"
	"github.com/sextantd/sextant/core/naming"
	"github.com/sextantd/sextant/core/persist"
)

// Persistent instances (ephemeral=false), service definitions and
// namespaces are written through the Raft store (Config.Store,
// core/persist), never through the ephemeral clients' NamingWrites: the
// store commits each write through Raft itself, forwarding it to the leader
// from a follower, and every node mirrors what is committed into its
// registry, which serves the reads (instance/list, GET /instance, GET
// /service, ...) as it serves the ephemeral instances.
//
// A persistent instance belongs to no client: it has no beats and lives
// until it is deregistered. Its address (ip, port, cluster) of a service is
// persistent or ephemeral, never both: the store refuses a persistent
// instance at an ephemeral one's address and the registry the reverse, each
// with a 400 naming ephemeral.
//
// Without a store (Config.Store nil) these writes answer 501, as before the
// store existed.
//
// The store's refusals become the naming API's: bad input a 400 naming the
// parameter (its field names are the request's), a missing instance 404,
// and no quorum (consensus.ErrNoQuorum) or a node not running
// (consensus.ErrStopped) 503 (v2 code 30000), which clients retry.

// storeError maps the store's and the Raft node's refusals that
// toAPIError does not know otherwise; nil for any other error.
func storeError(err error) *apiError {
	switch {
	case errors.Is(err, consensus.ErrNoQuorum):
		return &apiError{status: http.StatusServiceUnavailable, code: codeServerError,
			msg: "no Raft quorum: persistent writes are refused until a majority of members is up (" + err.Error() + ")"}
	case errors.Is(err, consensus.ErrStopped):
		return &apiError{status: http.StatusServiceUnavailable, code: codeServerError,
			msg: "the Raft store is not running on this node (starting or stopping): persistent writes are refused; try again"}
	case errors.Is(err, consensus.ErrTooLarge):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: codeParameterValidate, msg: "request: " + err.Error()}
	case errors.Is(err, persist.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: codeResourceNotFound, msg: err.Error()}
	case errors.Is(err, persist.ErrExists), errors.Is(err, persist.ErrNamespaceNotEmpty),
		errors.Is(err, persist.ErrPublicNamespace), errors.Is(err, naming.ErrServiceNotEmpty):
		return &apiError{status: http.StatusBadRequest, code: codeParameterValidate, msg: err.Error()}
	}
	return nil
}

// errNoStore refuses a write of what only the store holds (a service
// definition, a namespace) on a server without one: 501, naming param.
func errNoStore(param, what string) error {
	return &apiError{status: http.StatusNotImplemented, code: codeParameterValidate,
		msg: param + ": " + what + " are kept in the Raft store, which this server does not run"}
}

// persistentAt returns the persistent instance of svc at ip:port in cluster
// ("" is the default cluster, or, with anyCluster, any), as this node's
// store holds it.
func (a *namingAPI) persistentAt(svc naming.Service, ip string, port int, cluster string, anyCluster bool) (persist.Instance, bool) {
	if a.store == nil {
		return persist.Instance{}, false
	}
	if cluster == "" && !anyCluster {
		cluster = naming.DefaultCluster
	}
	for _, in := range a.store.FSM().Instances(svc) {
		if in.IP == ip && in.Port == port && (cluster == "" || in.Cluster == cluster) {
			return in, true
		}
	}
	return persist.Instance{}, false
}

// registerPersistent: POST /instance with ephemeral=false. Registering an
// instance again replaces it (weight, health, enabled, metadata), as Nacos
// does.
func (a *namingAPI) registerPersistent(ctx context.Context, svc naming.Service, in naming.Instance) error {
	if a.store == nil {
		return errPersistent("ephemeral")
	}
	return a.store.Do(ctx, persist.PutInstance{Service: svc, Instance: persist.Instance{IP: in.IP, Port: in.Port,
		Cluster: in.Cluster, Weight: in.Weight, Healthy: in.Healthy, Enabled: in.Enabled, Metadata: in.Metadata}})
}

// deregisterPersistent: DELETE /instance with ephemeral=false. With
// clusterName, the instance at that address goes; without it, the service's
// persistent instances at ip:port in any cluster go (Nacos 2.x holds one per
// ip:port and removes it whatever the cluster named), or the one in the
// default cluster when this node knows none. One that is not there is no
// error, as in Nacos.
func (a *namingAPI) deregisterPersistent(ctx context.Context, svc naming.Service, ip string, port int, cluster string) error {
	if a.store == nil {
		return errPersistent("ephemeral")
	}
	var ops []persist.Op
	if cluster == "" {
		for _, in := range a.store.FSM().Instances(svc) {
			if in.IP == ip && in.Port == port {
				ops = append(ops, persist.RemoveInstance{Service: svc, IP: ip, Port: port, Cluster: in.Cluster})
			}
		}
	}
	if len(ops) == 0 {
		// Written even when this node does not see it: it may be a
		// follower the registration has not reached yet.
		ops = append(ops, persist.RemoveInstance{Service: svc, IP: ip, Port: port, Cluster: cluster})
	}
	results, err := a.store.Write(ctx, ops...)
	if err != nil {
		return err
	}
	for _, err := range results {
		if err != nil && !errors.Is(err, persist.ErrNotFound) {
			return err
		}
	}
	return nil
}

// updatePersistent: PUT /instance of a persistent instance. The weight,
// enabled and metadata given replace the instance's (those absent keep
// theirs); 404 if there is none. Two updates racing may lose the fields
// of one (each writes the whole instance it read); the store keeps either
// from resurrecting an instance deregistered meanwhile (ExpectPresent).
func (a *namingAPI) updatePersistent(ctx context.Context, svc naming.Service, ip string, port int, cluster string, u naming.InstanceUpdate) error {
	if a.store == nil {
		return errPersistent("ephemeral")
	}
	// Bad input is told as such, not as an instance not found.
	if _, err := persist.Validate(a.store.FSM().Limits(), persist.RemoveInstance{Service: svc, IP: ip, Port: port, Cluster: cluster}); err != nil {
		return err
	}
	in, ok := a.persistentAt(svc, ip, port, cluster, false)
	if !ok {
		return naming.ErrInstanceNotFound
	}
	if u.Weight != nil {
		in.Weight = *u.Weight
	}
	if u.Enabled != nil {
		in.Enabled = *u.Enabled
	}
	if u.Metadata != nil {
		in.Metadata = u.Metadata // a new map: the stored one is never modified
	}
	return a.store.Do(ctx, persist.PutInstance{Service: svc, Instance: in, Expect: persist.ExpectPresent})
}

// persistentBeat answers a beat of a persistent instance: Nacos's clients
// beat only ephemeral instances (nacos-sdk-go's and the Java client's beat
// reactors take only those), and a persistent instance lives without
// beats, so a beat changes nothing. It is answered 10200 when the service
// has a persistent instance at ip:port (in any cluster: a beat names its
// instance by ip:port, as for ephemeral ones), and 20404 when it has none (a
// client then registers it again).
func (a *namingAPI) persistentBeat(svc naming.Service, ip string, port int) answer {
	code := beatNotFound
	if _, ok := a.persistentAt(svc, ip, port, "", true); ok {
		code = beatOK
	}
	return answer{json: beatAnswer{ClientBeatInterval: naming.DefaultHeartbeatInterval, Code: code, LightBeatEnabled: true}}
}
