// Package membership is the API of membership providers: what tells a
// Sextant node which nodes form its cluster. A provider is a plugin in its
// own process (or, for built-ins, optionally inside the server); the server
// asks it to watch the member list and acts on every change.
//
// This package is public: plugin authors import it and never anything under core/.
package membership

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/sextantd/sextant/sdk"
)

// Provider reports which nodes form the cluster.
type Provider interface {
	// Watch calls update with the member list — the HTTP address (host:port)
	// of every node, self included — at once, then after every change, until
	// ctx is done; it then returns ctx's error. It returns another error only
	// if it cannot go on at all (a provider that merely fails to refresh its
	// list keeps the last good one and keeps trying). self is this node's own
	// HTTP address. update is never called concurrently.
	//
	// A list is sorted, without duplicates, each address canonical
	// (ParseAddress), and never empty: a source that leaves the node out
	// still gets it counted in (WithSelf), as Nacos does. A source's bare ip
	// means the port of self. update is called only when the list changed
	// since the last call.
	//
	// Watch may be called again after an earlier call returned (the host
	// watches again after a hiccup); each call starts with the current list.
	Watch(ctx context.Context, self string, update func(members []string)) error
}

// Host is what the server offers a provider. A provider calls no host
// service: it only logs.
type Host struct {
	// Logger writes to the server's log under the plugin's name.
	Logger hclog.Logger
}

// Plugin is a membership plugin: what it is, and how to make its provider.
type Plugin struct {
	sdk.Info
	// New builds the provider from the plugin's configuration block (JSON,
	// already checked against Info.Config; decode it with sdk.DecodeConfig).
	New func(config []byte, host Host) (Provider, error)
}
