package scenario

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/sextantd/sextant/cmd/sextant-bench/internal/wire"
)

// hostKey names an instance by address.
func hostKey(ip string, port int) string { return ip + ":" + strconv.Itoa(port) }

// addrKey names a host by address.
func addrKey(h wire.Instance) string { return hostKey(h.IP, h.Port) }

// hostSet returns the addresses of hosts.
func hostSet(hosts []wire.Instance) map[string]bool { return keySet(hosts, addrKey) }

// keySet returns the keys of hosts.
func keySet(hosts []wire.Instance, key func(wire.Instance) string) map[string]bool {
	m := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		m[key(h)] = true
	}
	return m
}

// hasHost reports whether hosts hold ip:port.
func hasHost(hosts []wire.Instance, ip string, port int) bool {
	for _, h := range hosts {
		if h.Port == port && h.IP == ip {
			return true
		}
	}
	return false
}

// diffHosts describes how hosts differ from the addresses in want; "" when
// they are the same set.
func diffHosts(want map[string]bool, hosts []wire.Instance) string {
	return diffHostsBy(want, hosts, addrKey)
}

// diffHostsBy describes how hosts differ from the keys in want; "" when they
// are the same set.
func diffHostsBy(want map[string]bool, hosts []wire.Instance, key func(wire.Instance) string) string {
	got := keySet(hosts, key)
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing) == 0 && len(extra) == 0 && len(hosts) == len(want) {
		return ""
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return fmt.Sprintf("%d hosts, want %d; missing %s; unexpected %s", len(hosts), len(want), first(missing), first(extra))
}

// first lists up to three items.
func first(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	if len(items) > 3 {
		return fmt.Sprint(items[:3], " and ", len(items)-3, " more")
	}
	return fmt.Sprint(items)
}
