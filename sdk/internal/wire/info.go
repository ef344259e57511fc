package wire

import (
	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk"
)

// EncodeInfo returns info as a plugin of the given kind answers the Info call.
func EncodeInfo(info sdk.Info, kind Kind) *pluginv1.InfoResponse {
	resp := &pluginv1.InfoResponse{Name: info.Name, Kind: string(kind), Version: info.Version}
	for _, f := range info.Config {
		resp.ConfigSchema = append(resp.ConfigSchema, &pluginv1.ConfigField{
			Key: f.Key, Type: string(f.Type), Required: f.Required, Description: f.Description,
		})
	}
	return resp
}

// DecodeInfo returns what a plugin's answer to the Info call says it is.
func DecodeInfo(resp *pluginv1.InfoResponse) (sdk.Info, Kind) {
	info := sdk.Info{Name: resp.GetName(), Version: resp.GetVersion()}
	for _, f := range resp.GetConfigSchema() {
		info.Config = append(info.Config, sdk.Field{
			Key: f.GetKey(), Type: sdk.FieldType(f.GetType()), Required: f.GetRequired(), Description: f.GetDescription(),
		})
	}
	return info, Kind(resp.GetKind())
}

// WatchEnded is the message the plugin side of a membership plugin logs, at
// debug level, each time a Watch of its provider has returned. The
// conformance kit cannot see over the wire when a cancelled Watch really
// ended (the host's end of a server stream closes at once), so it reads a
// plugin binary's log for this.
const WatchEnded = "membership: watch ended"
