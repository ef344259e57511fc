package httpapi

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"

	"github.com/sextantd/sextant/core/cluster"
)

// nacosResult is the envelope of Nacos's v1 core endpoints.
type nacosResult struct {
	Code    int     `json:"code"`
	Message *string `json:"message"`
	Data    any     `json:"data"`
}

// node is one member as /nacos/v1/core/cluster/nodes lists it.
type node struct {
	IP            string         `json:"ip"`
	Port          int            `json:"port"`
	State         cluster.State  `json:"state"`
	Address       string         `json:"address"`
	FailAccessCnt int            `json:"failAccessCnt"`
	ExtendInfo    map[string]any `json:"extendInfo"`
}

func nodes(members []cluster.Member, version string) []node {
	out := make([]node, len(members))
	for i, m := range members {
		host, port, _ := net.SplitHostPort(m.Address)
		p, _ := strconv.Atoi(port)
		info := map[string]any{}
		if !m.LastReport.IsZero() {
			info["lastRefreshTime"] = m.LastReport.UnixMilli()
		}
		if m.Self {
			info["version"] = version
		}
		out[i] = node{IP: host, Port: p, State: m.State, Address: m.Address, FailAccessCnt: m.Failures, ExtendInfo: info}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
