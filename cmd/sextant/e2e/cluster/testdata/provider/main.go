// Command provider registers one instance with the official Nacos Go SDK
// and keeps it registered — reconnecting and registering again as the SDK
// does — until its standard input closes. It prints "registered" once the
// first registration succeeded.
//
// The cluster tests run it as a process of its own: the SDK's reconnection
// has a data race of its own, which must not fail tests run with -race.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

func main() {
	servers := flag.String("servers", "", "comma-separated HTTP ports of the servers on 127.0.0.1")
	service := flag.String("service", "", "service name")
	ip := flag.String("ip", "", "instance IP")
	dir := flag.String("dir", os.TempDir(), "directory for the SDK's logs and caches")
	flag.Parse()

	var configs []constant.ServerConfig
	for _, p := range strings.Split(*servers, ",") {
		port, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			fail(err)
		}
		configs = append(configs, *constant.NewServerConfig("127.0.0.1", port))
	}
	client, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: constant.NewClientConfig(constant.WithTimeoutMs(5000), constant.WithNotLoadCacheAtStart(true),
			constant.WithLogDir(*dir), constant.WithCacheDir(*dir), constant.WithLogLevel("error")),
		ServerConfigs: configs,
	})
	if err != nil {
		fail(err)
	}
	ok, err := client.RegisterInstance(vo.RegisterInstanceParam{Ip: *ip, Port: 80, ServiceName: *service,
		Weight: 1, Enable: true, Healthy: true, Ephemeral: true})
	if err != nil || !ok {
		fail(fmt.Errorf("register: %v %v", ok, err))
	}
	fmt.Println("registered")
	_, _ = io.Copy(io.Discard, os.Stdin)
	client.CloseClient()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "provider:", err)
	os.Exit(1)
}
