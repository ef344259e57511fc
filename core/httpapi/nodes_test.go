package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/sextantd/sextant/core/cluster"
)

func TestClusterNodes(t *testing.T) {
	t1 := time.UnixMilli(1_700_000_000_123)
	t2 := time.UnixMilli(1_700_000_004_567)
	tests := []struct {
		name    string
		version string
		members []cluster.Member
		want    string
	}{
		{
			name:    "nil members",
			version: "1.0.0",
			want:    `{"code":200,"message":null,"data":[]}`,
		},
		{
			name:    "empty members",
			version: "1.0.0",
			members: []cluster.Member{},
			want:    `{"code":200,"message":null,"data":[]}`,
		},
		{
			name:    "self never reported",
			version: "1.0.0",
			members: []cluster.Member{{Address: "10.0.0.1:8848", State: cluster.Up, Self: true}},
			want: `{"code":200,"message":null,"data":[` +
				`{"ip":"10.0.0.1","port":8848,"state":"UP","address":"10.0.0.1:8848","failAccessCnt":0,"extendInfo":{"version":"1.0.0"}}` +
				`]}`,
		},
		{
			name:    "members in every state",
			version: "2.3.4",
			members: []cluster.Member{
				{Address: "10.0.0.1:8848", State: cluster.Up, Self: true, LastReport: t1},
				{Address: "10.0.0.2:9848", State: cluster.Suspicious, Failures: 1, LastReport: t2},
				{Address: "10.0.0.3:8848", State: cluster.Down, Failures: 3},
			},
			want: `{"code":200,"message":null,"data":[` +
				`{"ip":"10.0.0.1","port":8848,"state":"UP","address":"10.0.0.1:8848","failAccessCnt":0,"extendInfo":{"lastRefreshTime":1700000000123,"version":"2.3.4"}},` +
				`{"ip":"10.0.0.2","port":9848,"state":"SUSPICIOUS","address":"10.0.0.2:9848","failAccessCnt":1,"extendInfo":{"lastRefreshTime":1700000004567}},` +
				`{"ip":"10.0.0.3","port":8848,"state":"DOWN","address":"10.0.0.3:8848","failAccessCnt":3,"extendInfo":{}}` +
				`]}`,
		},
		{
			name:    "host names and IPv6",
			version: "2.3.4",
			members: []cluster.Member{
				{Address: "node-a.example:8848", State: cluster.Up},
				{Address: "[fd00::2]:8850", State: cluster.Up, LastReport: t1},
			},
			want: `{"code":200,"message":null,"data":[` +
				`{"ip":"node-a.example","port":8848,"state":"UP","address":"node-a.example:8848","failAccessCnt":0,"extendInfo":{}},` +
				`{"ip":"fd00::2","port":8850,"state":"UP","address":"[fd00::2]:8850","failAccessCnt":0,"extendInfo":{"lastRefreshTime":1700000000123}}` +
				`]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := handler(Config{
				Version: tt.version,
				Members: func() []cluster.Member { return tt.members },
			})
			rec := do(h, http.MethodGet, nodesPath)
			assertResponse(t, rec, http.StatusOK, "application/json", tt.want+"\n")
		})
	}
}

// TestClusterNodesLive checks that the list is asked for on every request.
func TestClusterNodesLive(t *testing.T) {
	members := []cluster.Member{{Address: "10.0.0.1:8848", State: cluster.Up, Self: true}}
	h := handler(Config{Members: func() []cluster.Member { return members }})

	states := func() []cluster.State {
		var res struct {
			Data []struct {
				State cluster.State `json:"state"`
			} `json:"data"`
		}
		rec := do(h, http.MethodGet, nodesPath)
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatalf("decoding %q: %v", rec.Body.String(), err)
		}
		var out []cluster.State
		for _, n := range res.Data {
			out = append(out, n.State)
		}
		return out
	}

	if got := states(); len(got) != 1 || got[0] != cluster.Up {
		t.Fatalf("states = %v, want [UP]", got)
	}
	members = append(members, cluster.Member{Address: "10.0.0.2:8848", State: cluster.Down})
	if got := states(); len(got) != 2 || got[0] != cluster.Up || got[1] != cluster.Down {
		t.Fatalf("states = %v, want [UP DOWN]", got)
	}
}
