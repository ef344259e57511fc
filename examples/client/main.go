// Command client registers a service instance with a Sextant (or Nacos) server
// using the official Nacos Go SDK, subscribes to the service, prints what it is
// pushed, and deregisters.
//
//	go run ./examples/client --server 127.0.0.1:8848 --service demo
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

func main() {
	server := flag.String("server", "127.0.0.1:8848", "server HTTP address (gRPC is its port + 1000)")
	service := flag.String("service", "demo", "service name")
	ip := flag.String("ip", "10.0.0.1", "instance IP to register")
	port := flag.Uint64("port", 8080, "instance port to register")
	flag.Parse()
	if err := run(*server, *service, *ip, *port); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run(server, service, ip string, port uint64) error {
	host, portText, err := net.SplitHostPort(server)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	httpPort, err := strconv.ParseUint(portText, 10, 64)
	if err != nil {
		return fmt.Errorf("--server port: %w", err)
	}
	dir, err := os.MkdirTemp("", "sextant-client")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	client, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: constant.NewClientConfig(
			constant.WithTimeoutMs(5000),
			constant.WithNotLoadCacheAtStart(true),
			constant.WithUpdateCacheWhenEmpty(true),
			constant.WithLogDir(dir),
			constant.WithCacheDir(dir),
			constant.WithLogLevel("warn"),
		),
		ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig(host, httpPort)},
	})
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer client.CloseClient()

	pushed := make(chan []model.Instance, 16)
	if err := client.Subscribe(&vo.SubscribeParam{
		ServiceName: service,
		SubscribeCallback: func(instances []model.Instance, err error) {
			pushed <- instances
		},
	}); err != nil {
		return fmt.Errorf("subscribing: %w", err)
	}

	if _, err := client.RegisterInstance(vo.RegisterInstanceParam{
		Ip: ip, Port: port, ServiceName: service,
		Weight: 1, Enable: true, Healthy: true, Ephemeral: true,
		Metadata: map[string]string{"version": "1.0"},
	}); err != nil {
		return fmt.Errorf("registering: %w", err)
	}
	fmt.Printf("registered %s:%d as %s\n", ip, port, service)

	if err := awaitPush(pushed, func(is []model.Instance) bool { return len(is) > 0 }); err != nil {
		return err
	}
	instances, err := client.SelectInstances(vo.SelectInstancesParam{ServiceName: service, HealthyOnly: true})
	if err != nil {
		return fmt.Errorf("discovering: %w", err)
	}
	for _, in := range instances {
		fmt.Printf("discovered %s:%d weight=%v metadata=%v\n", in.Ip, in.Port, in.Weight, in.Metadata)
	}

	if _, err := client.DeregisterInstance(vo.DeregisterInstanceParam{Ip: ip, Port: port, ServiceName: service, Ephemeral: true}); err != nil {
		return fmt.Errorf("deregistering: %w", err)
	}
	if err := awaitPush(pushed, func(is []model.Instance) bool { return len(is) == 0 }); err != nil {
		return err
	}
	fmt.Println("deregistered; the subscriber was pushed an empty service")
	return nil
}

// awaitPush waits for a push that satisfies ok.
func awaitPush(pushed <-chan []model.Instance, ok func([]model.Instance) bool) error {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case is := <-pushed:
			if ok(is) {
				fmt.Printf("pushed %d instance(s)\n", len(is))
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no expected push within 10s")
		}
	}
}
