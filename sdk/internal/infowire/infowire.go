// Package infowire encodes and decodes a plugin's answer to the Info call,
// which every kind of plugin answers alike.
package infowire

import (
	pluginv1 "github.com/sextantd/sextant/proto/plugin/v1"
	"github.com/sextantd/sextant/sdk"
)

// Encode returns info as a plugin of the given kind answers the Info call.
func Encode(info sdk.Info, kind sdk.Kind) *pluginv1.InfoResponse {
	resp := &pluginv1.InfoResponse{Name: info.Name, Kind: string(kind), Version: info.Version}
	for _, f := range info.Config {
		resp.ConfigSchema = append(resp.ConfigSchema, &pluginv1.ConfigField{
			Key: f.Key, Type: string(f.Type), Required: f.Required, Description: f.Description,
		})
	}
	return resp
}

// Decode returns what a plugin's answer to the Info call says it is.
func Decode(resp *pluginv1.InfoResponse) (sdk.Info, sdk.Kind) {
	info := sdk.Info{Name: resp.GetName(), Version: resp.GetVersion()}
	for _, f := range resp.GetConfigSchema() {
		info.Config = append(info.Config, sdk.Field{
			Key: f.GetKey(), Type: sdk.FieldType(f.GetType()), Required: f.GetRequired(), Description: f.GetDescription(),
		})
	}
	return info, sdk.Kind(resp.GetKind())
}
