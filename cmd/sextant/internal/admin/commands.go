package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
)

// The items of the read API, as far as the tables show them.
type (
	serviceItem struct {
		GroupName   string   `json:"groupName"`
		Name        string   `json:"name"`
		Clusters    []string `json:"clusters"`
		Instances   int      `json:"instances"`
		Healthy     int      `json:"healthy"`
		Subscribers int      `json:"subscribers"`
	}
	instanceItem struct {
		IP          string            `json:"ip"`
		Port        int               `json:"port"`
		ClusterName string            `json:"clusterName"`
		Weight      float64           `json:"weight"`
		Healthy     bool              `json:"healthy"`
		Enabled     bool              `json:"enabled"`
		Ephemeral   bool              `json:"ephemeral"`
		Metadata    map[string]string `json:"metadata"`
		ClientID    string            `json:"clientId"`
		ClientType  string            `json:"clientType"`
		OwnerNode   string            `json:"ownerNode"`
	}
	clientItem struct {
		ClientID      string `json:"clientId"`
		ClientType    string `json:"clientType"`
		IP            string `json:"ip"`
		Port          int    `json:"port"`
		App           string `json:"app"`
		Version       string `json:"version"`
		OwnerNode     string `json:"ownerNode"`
		Instances     int    `json:"instances"`
		Subscriptions int    `json:"subscriptions"`
	}
	subscriberItem struct {
		ClientID   string `json:"clientId"`
		ClientType string `json:"clientType"`
		IP         string `json:"ip"`
		Port       int    `json:"port"`
		App        string `json:"app"`
		Agent      string `json:"agent"`
		Clusters   string `json:"clusters"`
		OwnerNode  string `json:"ownerNode"`
	}
	memberItem struct {
		Address    string `json:"address"`
		State      string `json:"state"`
		Self       bool   `json:"self"`
		Failures   int    `json:"failures"`
		LastReport int64  `json:"lastReport"`
	}
	pluginItem struct {
		Name         string `json:"name"`
		Kind         string `json:"kind"`
		Role         string `json:"role"`
		Path         string `json:"path"`
		InProcess    bool   `json:"inProcess"`
		PID          int    `json:"pid"`
		State        string `json:"state"`
		Restarts     int    `json:"restarts"`
		ServingSince int64  `json:"servingSince"`
		LastError    string `json:"lastError"`
	}
)

// The clientType of an instance of a gRPC connection, which the HTTP API
// cannot deregister.
const connectionClient = "connection"

// scope returns the namespace and group parameters o sets.
func scope(o options) url.Values {
	q := url.Values{}
	if o.namespace != "" {
		q.Set("namespaceId", o.namespace)
	}
	if o.group != "" {
		q.Set("groupName", o.group)
	}
	return q
}

// serviceParams returns the parameters naming the service SERVICE names.
func serviceParams(o options) url.Values {
	q := scope(o)
	q.Set("serviceName", o.service)
	return q
}

// serviceLabel is how messages name the service: group@@name.
func serviceLabel(o options) string {
	if strings.Contains(o.service, "@@") {
		return o.service
	}
	return orDefault(o.group, "DEFAULT_GROUP") + "@@" + o.service
}

// orDefault returns s, or def if s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// listAndPrint reads a list and prints it: as JSON, or as a table of the
// items decoded into T, with the header and row given.
func listAndPrint[T any](c *client, o options, path string, q url.Values, out io.Writer, header string, row func(T) []string) error {
	raw, err := c.list(path, q)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(out, raw)
	}
	items, err := decodeItems[T](raw)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		cells := row(it)
		for i, s := range cells {
			cells[i] = cell(s)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func services(c *client, o options, out io.Writer) error {
	q := scope(o)
	if o.search != "" {
		q.Set("search", o.search)
	}
	return listAndPrint(c, o, "/services", q, out, "GROUP\tSERVICE\tCLUSTERS\tINSTANCES\tHEALTHY\tSUBSCRIBERS",
		func(s serviceItem) []string {
			return []string{s.GroupName, s.Name, strings.Join(s.Clusters, ","), strconv.Itoa(s.Instances), strconv.Itoa(s.Healthy),
				strconv.Itoa(s.Subscribers)}
		})
}

func instances(c *client, o options, out io.Writer) error {
	return listAndPrint(c, o, "/instances", serviceParams(o), out, "ADDRESS\tCLUSTER\tWEIGHT\tHEALTHY\tENABLED\tEPHEMERAL\tCLIENT\tOWNER\tMETADATA",
		func(in instanceItem) []string {
			md := make([]string, 0, len(in.Metadata))
			for _, k := range slices.Sorted(maps.Keys(in.Metadata)) {
				md = append(md, k+"="+in.Metadata[k])
			}
			return []string{net.JoinHostPort(in.IP, strconv.Itoa(in.Port)), in.ClusterName, strconv.FormatFloat(in.Weight, 'g', -1, 64),
				strconv.FormatBool(in.Healthy), strconv.FormatBool(in.Enabled), strconv.FormatBool(in.Ephemeral), in.ClientID,
				in.OwnerNode, strings.Join(md, ",")}
		})
}

func clients(c *client, o options, out io.Writer) error {
	return listAndPrint(c, o, "/clients", url.Values{}, out, "CLIENT\tTYPE\tADDRESS\tAPP\tVERSION\tOWNER\tINSTANCES\tSUBSCRIPTIONS",
		func(cl clientItem) []string {
			return []string{cl.ClientID, cl.ClientType, net.JoinHostPort(cl.IP, strconv.Itoa(cl.Port)), cl.App, cl.Version, cl.OwnerNode,
				strconv.Itoa(cl.Instances), strconv.Itoa(cl.Subscriptions)}
		})
}

func subscribers(c *client, o options, out io.Writer) error {
	return listAndPrint(c, o, "/subscribers", serviceParams(o), out, "CLIENT\tTYPE\tADDRESS\tAPP\tAGENT\tCLUSTERS\tOWNER",
		func(s subscriberItem) []string {
			addr := s.IP
			if s.Port != 0 {
				addr = net.JoinHostPort(s.IP, strconv.Itoa(s.Port))
			}
			return []string{s.ClientID, s.ClientType, addr, s.App, s.Agent, s.Clusters, s.OwnerNode}
		})
}

func members(c *client, o options, out io.Writer) error {
	now := time.Now()
	return listAndPrint(c, o, "/members", url.Values{}, out, "ADDRESS\tSTATE\tSELF\tFAILURES\tLAST REPORT",
		func(m memberItem) []string {
			last := ""
			if m.LastReport > 0 {
				last = age(now, m.LastReport) + " ago"
			}
			return []string{m.Address, m.State, strconv.FormatBool(m.Self), strconv.Itoa(m.Failures), last}
		})
}

func plugins(c *client, o options, out io.Writer) error {
	now := time.Now()
	return listAndPrint(c, o, "/plugins", url.Values{}, out, "NAME\tKIND\tROLE\tSOURCE\tPID\tSTATE\tRESTARTS\tUPTIME\tLAST ERROR",
		func(p pluginItem) []string {
			source, pid, uptime := p.Path, "", ""
			switch {
			case p.InProcess:
				source = "builtin (in process)"
			case p.Path == "":
				source = "builtin"
			}
			if p.PID > 0 {
				pid = strconv.Itoa(p.PID)
			}
			if p.ServingSince > 0 {
				uptime = age(now, p.ServingSince)
			}
			lastError := p.LastError
			if len(lastError) > maxErrorShown {
				lastError = lastError[:maxErrorShown] + "..."
			}
			return []string{p.Name, p.Kind, p.Role, source, pid, p.State, strconv.Itoa(p.Restarts), uptime, lastError}
		})
}

// deregister removes an instance: it finds the instance at IP:PORT (in the
// cluster given, of the kind --ephemeral says) among the service's, and
// deletes it through the Nacos API. The instances of a gRPC connection are
// the connection's as long as it lives, and are refused with a hint.
func deregister(c *client, o options, out io.Writer) error {
	q, ip, port := serviceParams(o), o.ip, o.port
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	raw, err := c.list("/instances", q)
	if err != nil {
		return err
	}
	all, err := decodeItems[instanceItem](raw)
	if err != nil {
		return err
	}
	label := serviceLabel(o)
	var matched []json.RawMessage // what the deletion removes
	var match, connection *instanceItem
	otherKind := false
	for i, in := range all {
		switch {
		case in.IP != ip || in.Port != port || o.cluster != "" && in.ClusterName != o.cluster:
		case in.Ephemeral != o.ephemeral:
			otherKind = true
		case in.ClientType == connectionClient:
			connection = &all[i]
		default:
			matched, match = append(matched, raw[i]), &all[i]
		}
	}
	switch {
	case match == nil && connection != nil:
		return &serverError{msg: fmt.Sprintf("%s in %s is registered by the gRPC connection %s (of node %s): it lives as long as "+
			"that connection, and its client would register it again; stop the client, or disable the instance "+
			"(PUT %s enabled=false)", addr, label, connection.ClientID, orDefault(connection.OwnerNode, "?"), instancePath)}
	case match == nil && otherKind && o.ephemeral:
		return &serverError{msg: fmt.Sprintf("%s in %s is a persistent instance: add --ephemeral=false", addr, label)}
	case match == nil && otherKind:
		return &serverError{msg: fmt.Sprintf("%s in %s is an ephemeral instance: leave out --ephemeral=false", addr, label)}
	case match == nil:
		where := ""
		if o.cluster != "" {
			where = " in cluster " + o.cluster
		}
		return &serverError{msg: fmt.Sprintf("no instance %s%s in service %s", addr, where, label)}
	case !o.ephemeral && o.cluster == "" && len(matched) > 1:
		return usagef("%s in %s is in several clusters: name one with --cluster", addr, label)
	}
	q.Set("ip", ip)
	q.Set("port", strconv.Itoa(port))
	q.Set("ephemeral", strconv.FormatBool(o.ephemeral))
	q.Set("clusterName", match.ClusterName)
	if err := c.v2(http.MethodDelete, instancePath, q, nil); err != nil {
		return err
	}
	if o.json {
		return printJSON(out, map[string]any{"deregistered": matched})
	}
	fmt.Fprintf(out, "deregistered %s from %s in namespace %s\n", addr, label, orDefault(o.namespace, "public"))
	return nil
}

// printJSON writes v as indented JSON.
func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cell makes s one table cell: "-" when empty, control characters (tabs
// and line breaks included, which would break the table, and escapes,
// which a terminal would run) as spaces or '?'.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r):
			return '?'
		}
		return r
	}, s)
}

// age is the time since the Unix milliseconds ms, to the second.
func age(now time.Time, ms int64) string {
	d := now.Sub(time.UnixMilli(ms)).Truncate(time.Second)
	return max(d, 0).String()
}
