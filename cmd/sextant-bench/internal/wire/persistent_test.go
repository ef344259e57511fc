package wire

import (
	"encoding/json"
	"testing"
)

func TestRegisterPersistent(t *testing.T) {
	req := RegisterPersistent(Service{Namespace: "public", Group: "G", Name: "s"}, NewInstance("10.0.0.1", 20000))
	if req.RequestType() != "PersistentInstanceRequest" || req.ResponseType() != "InstanceResponse" {
		t.Errorf("types %s, %s", req.RequestType(), req.ResponseType())
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Type        string `json:"type"`
		ServiceName string `json:"serviceName"`
		Instance    struct {
			Ephemeral bool `json:"ephemeral"`
			Port      int  `json:"port"`
		} `json:"instance"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != "registerInstance" || got.ServiceName != "s" || got.Instance.Ephemeral || got.Instance.Port != 20000 {
		t.Errorf("body %s", b)
	}
}
