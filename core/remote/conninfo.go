package remote

import "time"

// ConnectionInfo is what the client port knows of a connection beyond its
// client in the registry, for the HTTP API's client endpoints.
type ConnectionInfo struct {
	ID string
	// RemoteAddr is the client's ip:port as the listener saw it.
	RemoteAddr string
	// ClientVersion is the clientVersion of its ConnectionSetupRequest
	// (e.g. "Nacos-Go-Client:v2.3.2").
	ClientVersion string
	// LastActive is when the client last sent anything.
	LastActive time.Time
}

// Connection returns what the server knows of the set-up connection id.
func (s *Server) Connection(id string) (ConnectionInfo, bool) {
	c := s.conn(id)
	if c == nil {
		return ConnectionInfo{}, false
	}
	return ConnectionInfo{ID: c.id, RemoteAddr: c.addr, ClientVersion: c.version, LastActive: c.idleSince()}, true
}
