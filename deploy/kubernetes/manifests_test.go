// Package kubernetes_test checks the manifests of this directory without a
// cluster: every YAML document is decoded strictly into the subset of the
// Kubernetes API it uses (a field missing from it, or misspelt, fails), and the fields that must
// agree do — the StatefulSet's Service, the selectors and the pods' labels,
// the ports of the probes, the Services and the configuration, the
// configuration itself (loaded by the server's own loader, with the dns
// membership plugin's schema and checks), the volumes and the security
// settings.
package kubernetes_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"

	"github.com/sextantd/sextant/core/config"
	"github.com/sextantd/sextant/plugins/dns"
	"github.com/sextantd/sextant/sdk/membership"
)

// The subset of the Kubernetes API the manifests use. Decoding is strict:
// a field missing here is an error, so add it when a manifest needs it.
type (
	object struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Metadata   meta            `json:"metadata"`
		Data       json.RawMessage `json:"data"`
		Spec       json.RawMessage `json:"spec"`
	}
	meta struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	}
	selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	}
	serviceSpec struct {
		Type                     string            `json:"type"`
		ClusterIP                string            `json:"clusterIP"`
		PublishNotReadyAddresses bool              `json:"publishNotReadyAddresses"`
		Selector                 map[string]string `json:"selector"`
		Ports                    []servicePort     `json:"ports"`
	}
	servicePort struct {
		Name       string          `json:"name"`
		Port       int             `json:"port"`
		TargetPort json.RawMessage `json:"targetPort"` // a name or a number
		Protocol   string          `json:"protocol"`
	}
	statefulSetSpec struct {
		ServiceName          string      `json:"serviceName"`
		Replicas             int         `json:"replicas"`
		PodManagementPolicy  string      `json:"podManagementPolicy"`
		Selector             selector    `json:"selector"`
		Template             podTemplate `json:"template"`
		VolumeClaimTemplates []struct {
			Metadata meta `json:"metadata"`
			Spec     struct {
				AccessModes []string `json:"accessModes"`
				Resources   struct {
					Requests map[string]string `json:"requests"`
				} `json:"resources"`
			} `json:"spec"`
		} `json:"volumeClaimTemplates"`
	}
	podTemplate struct {
		Metadata meta    `json:"metadata"`
		Spec     podSpec `json:"spec"`
	}
	podSpec struct {
		EnableServiceLinks            *bool `json:"enableServiceLinks"`
		TerminationGracePeriodSeconds int   `json:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot   bool `json:"runAsNonRoot"`
			RunAsUser      int  `json:"runAsUser"`
			RunAsGroup     int  `json:"runAsGroup"`
			FSGroup        int  `json:"fsGroup"`
			SeccompProfile struct {
				Type string `json:"type"`
			} `json:"seccompProfile"`
		} `json:"securityContext"`
		Affinity   json.RawMessage `json:"affinity"` // not checked
		Containers []container     `json:"containers"`
		Volumes    []struct {
			Name      string `json:"name"`
			ConfigMap *struct {
				Name string `json:"name"`
			} `json:"configMap"`
			EmptyDir *struct {
				SizeLimit string `json:"sizeLimit"`
			} `json:"emptyDir"`
		} `json:"volumes"`
	}
	container struct {
		Name            string   `json:"name"`
		Image           string   `json:"image"`
		ImagePullPolicy string   `json:"imagePullPolicy"`
		Args            []string `json:"args"`
		Env             []struct {
			Name      string `json:"name"`
			Value     string `json:"value"`
			ValueFrom *struct {
				FieldRef *struct {
					FieldPath string `json:"fieldPath"`
				} `json:"fieldRef"`
				SecretKeyRef *struct {
					Name string `json:"name"`
					Key  string `json:"key"`
				} `json:"secretKeyRef"`
			} `json:"valueFrom"`
		} `json:"env"`
		Ports []struct {
			Name          string `json:"name"`
			ContainerPort int    `json:"containerPort"`
			Protocol      string `json:"protocol"`
		} `json:"ports"`
		ReadinessProbe *probe `json:"readinessProbe"`
		LivenessProbe  *probe `json:"livenessProbe"`
		Resources      struct {
			Requests map[string]string `json:"requests"`
			Limits   map[string]string `json:"limits"`
		} `json:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `json:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `json:"drop"`
			} `json:"capabilities"`
		} `json:"securityContext"`
		VolumeMounts []struct {
			Name      string `json:"name"`
			MountPath string `json:"mountPath"`
			ReadOnly  bool   `json:"readOnly"`
		} `json:"volumeMounts"`
	}
	probe struct {
		HTTPGet struct {
			Path string          `json:"path"`
			Port json.RawMessage `json:"port"` // a name or a number
		} `json:"httpGet"`
		InitialDelaySeconds int `json:"initialDelaySeconds"`
		PeriodSeconds       int `json:"periodSeconds"`
		FailureThreshold    int `json:"failureThreshold"`
	}
	pdbSpec struct {
		MaxUnavailable json.RawMessage `json:"maxUnavailable"`
		Selector       selector        `json:"selector"`
	}
)

// kinds are the apiVersion and kind of every object the manifests may hold.
var kinds = map[string]string{
	"ConfigMap":           "v1",
	"Service":             "v1",
	"StatefulSet":         "apps/v1",
	"PodDisruptionBudget": "policy/v1",
}

// strict decodes raw into v, refusing a field v lacks.
func strict(raw []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// exactKeys checks that every key of tree (a decoded YAML document) is a
// field of t spelt exactly — encoding/json matches names regardless of
// case, Kubernetes does not — naming the path of the first that is not.
func exactKeys(tree any, t reflect.Type, at string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[json.RawMessage]() {
		return nil // not checked
	}
	switch v := tree.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for k, item := range v {
				if err := exactKeys(item, t.Elem(), at+"."+k); err != nil {
					return err
				}
			}
		case reflect.Struct:
			fields := map[string]reflect.Type{}
			for f := range t.Fields() {
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				fields[name] = f.Type
			}
			for k, item := range v {
				ft, ok := fields[k]
				if !ok {
					return fmt.Errorf("%s: unknown field %q", at, at+"."+k)
				}
				if err := exactKeys(item, ft, at+"."+k); err != nil {
					return err
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice {
			for i, item := range v {
				if err := exactKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// documentSeparator splits a YAML file into its documents.
var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// manifests are the objects of this directory's YAML files.
type manifests struct {
	configMaps   map[string]map[string]string // name → data
	services     map[string]serviceSpec
	statefulSets map[string]statefulSetSpec
	pdbs         map[string]pdbSpec
}

func load(t *testing.T) manifests {
	t.Helper()
	m := manifests{
		configMaps:   map[string]map[string]string{},
		services:     map[string]serviceSpec{},
		statefulSets: map[string]statefulSetSpec{},
		pdbs:         map[string]pdbSpec{},
	}
	files, err := filepath.Glob("*.y*ml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests here: %v", err)
	}
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range documentSeparator.Split(string(text), -1) {
			where := fmt.Sprintf("%s, document %d", file, i+1)
			tree, err := yaml.Parser().Unmarshal([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if len(tree) == 0 {
				continue // comments only
			}
			raw, err := json.Marshal(tree)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj object
			if err := strict(raw, &obj); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			specType := map[string]reflect.Type{
				"Service":             reflect.TypeFor[serviceSpec](),
				"StatefulSet":         reflect.TypeFor[statefulSetSpec](),
				"PodDisruptionBudget": reflect.TypeFor[pdbSpec](),
			}[obj.Kind]
			if err := exactKeys(tree, reflect.TypeFor[object](), ""); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if specType != nil {
				if err := exactKeys(tree["spec"], specType, ".spec"); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
			}
			if want, ok := kinds[obj.Kind]; !ok || obj.APIVersion != want {
				t.Fatalf("%s: %s %s is not one of the known kinds %v", where, obj.APIVersion, obj.Kind, kinds)
			}
			if obj.Metadata.Name == "" {
				t.Fatalf("%s: a %s without a name", where, obj.Kind)
			}
			name := obj.Metadata.Name
			var dup bool
			switch obj.Kind {
			case "ConfigMap":
				_, dup = m.configMaps[name]
				data := map[string]string{}
				err, m.configMaps[name] = strict(obj.Data, &data), data
			case "Service":
				_, dup = m.services[name]
				var spec serviceSpec
				err, m.services[name] = strict(obj.Spec, &spec), spec
			case "StatefulSet":
				_, dup = m.statefulSets[name]
				var spec statefulSetSpec
				err, m.statefulSets[name] = strict(obj.Spec, &spec), spec
			case "PodDisruptionBudget":
				_, dup = m.pdbs[name]
				var spec pdbSpec
				err, m.pdbs[name] = strict(obj.Spec, &spec), spec
			}
			if err != nil {
				t.Fatalf("%s: %s %s: %v", where, obj.Kind, name, err)
			}
			if dup {
				t.Fatalf("%s: a second %s named %s", where, obj.Kind, name)
			}
		}
	}
	return m
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false // selects everything: never meant
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// the single object of a kind, by name.
func only[V any](t *testing.T, kind string, objects map[string]V) (string, V) {
	t.Helper()
	if len(objects) != 1 {
		t.Fatalf("%d objects of kind %s, want 1: %v", len(objects), kind, slices.Sorted(maps.Keys(objects)))
	}
	for name, v := range objects {
		return name, v
	}
	panic("unreachable")
}

// portOf resolves a probe's or a Service's port (a name or a number)
// against c's ports.
func portOf(t *testing.T, c container, raw json.RawMessage) (name string, number int) {
	t.Helper()
	var s string
	if json.Unmarshal(raw, &s) == nil {
		for _, p := range c.Ports {
			if p.Name == s {
				return p.Name, p.ContainerPort
			}
		}
		t.Fatalf("the port %q is not one of container %s's", s, c.Name)
	}
	if err := json.Unmarshal(raw, &number); err != nil {
		t.Fatalf("the port %s is neither a name nor a number", raw)
	}
	for _, p := range c.Ports {
		if p.ContainerPort == number {
			return p.Name, number
		}
	}
	t.Fatalf("the port %d is not one of container %s's", number, c.Name)
	return "", 0
}

// mebibytes reads a memory quantity in Mi or Gi.
func mebibytes(t *testing.T, q string) int {
	t.Helper()
	for suffix, factor := range map[string]int{"Mi": 1, "Gi": 1024} {
		if n, err := strconv.Atoi(strings.TrimSuffix(q, suffix)); err == nil && strings.HasSuffix(q, suffix) {
			return n * factor
		}
	}
	t.Fatalf("memory %q is not in Mi or Gi", q)
	return 0
}

// podEnv is the container's environment as the kubelet makes it for the
// pod named pod in the namespace default, with a made-up secret: $(VAR) expanded from the variables
// before it.
func podEnv(t *testing.T, c container, pod string) []string {
	t.Helper()
	fields := map[string]string{"metadata.name": pod, "metadata.namespace": "default"}
	vars := map[string]string{}
	var env []string
	for _, e := range c.Env {
		value := e.Value
		switch {
		case e.ValueFrom == nil:
			value = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(value, func(ref string) string {
				name := ref[2 : len(ref)-1]
				v, ok := vars[name]
				if !ok {
					t.Errorf("env %s refers to %s, which no variable before it defines", e.Name, ref)
				}
				return v
			})
		case e.ValueFrom.FieldRef != nil:
			v, ok := fields[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("env %s: unexpected field %s", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			value = v
		case e.ValueFrom.SecretKeyRef != nil:
			value = strings.Repeat("5e", 32) // what `openssl rand -hex 32` gives
		}
		vars[e.Name] = value
		env = append(env, e.Name+"="+value)
	}
	return env
}

func TestManifests(t *testing.T) {
	m := load(t)
	stsName, sts := only(t, "StatefulSet", m.statefulSets)
	pdbName, pdb := only(t, "PodDisruptionBudget", m.pdbs)
	pod := sts.Template
	labels := pod.Metadata.Labels
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	// The StatefulSet, its Services and its budget select its pods.
	if !subset(sts.Selector.MatchLabels, labels) {
		t.Errorf("StatefulSet %s: selector %v does not select its pods' labels %v", stsName, sts.Selector.MatchLabels, labels)
	}
	if sts.Replicas != 3 {
		t.Errorf("StatefulSet %s: %d replicas, want 3", stsName, sts.Replicas)
	}
	if !subset(pdb.Selector.MatchLabels, labels) {
		t.Errorf("PodDisruptionBudget %s: selector %v does not select the pods' labels %v", pdbName, pdb.Selector.MatchLabels, labels)
	}
	if string(pdb.MaxUnavailable) != "1" {
		t.Errorf("PodDisruptionBudget %s: maxUnavailable %s, want 1", pdbName, pdb.MaxUnavailable)
	}
	headless, ok := m.services[sts.ServiceName]
	if !ok {
		t.Fatalf("StatefulSet %s: serviceName %q is none of the Services %v", stsName, sts.ServiceName, slices.Sorted(maps.Keys(m.services)))
	}
	if headless.ClusterIP != "None" || !headless.PublishNotReadyAddresses {
		t.Errorf("Service %s: clusterIP %q, publishNotReadyAddresses %v; the members' Service must be headless and list pods "+
			"before they are ready", sts.ServiceName, headless.ClusterIP, headless.PublishNotReadyAddresses)
	}
	servicePorts := map[string]map[string]int{} // Service → port name → container port
	for name, svc := range m.services {
		if !subset(svc.Selector, labels) {
			t.Errorf("Service %s: selector %v does not select the pods' labels %v", name, svc.Selector, labels)
		}
		servicePorts[name] = map[string]int{}
		for _, p := range svc.Ports {
			portName, number := portOf(t, c, p.TargetPort)
			if p.Port != number || p.Name != portName || p.Protocol != "TCP" {
				t.Errorf("Service %s: port %s %d/%s goes to the container's %s %d", name, p.Name, p.Port, p.Protocol, portName, number)
			}
			servicePorts[name][p.Name] = number
		}
	}

	// The configuration: the server's own loader accepts it, with the
	// pod's environment, and the dns plugin its block.
	var configPath, dataClaim string
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm.MountPath
	}
	if i := slices.Index(c.Args, "--config"); i < 0 || i+1 == len(c.Args) || c.Args[0] != "server" {
		t.Fatalf("container args %q: want server --config FILE", c.Args)
	} else {
		configPath = c.Args[i+1]
	}
	var configText string
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil && path.Dir(configPath) == mounts[v.Name] {
			configText = m.configMaps[v.ConfigMap.Name][path.Base(configPath)]
		}
	}
	if configText == "" {
		t.Fatalf("--config %s is no key of a ConfigMap mounted at %s", configPath, path.Dir(configPath))
	}
	file := filepath.Join(t.TempDir(), path.Base(configPath))
	if err := os.WriteFile(file, []byte(configText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, notes, err := config.Load(file, podEnv(t, c, stsName+"-0"), nil)
	if err != nil {
		t.Fatalf("the server does not accept the configuration: %v", err)
	}
	for _, n := range notes {
		if n.Warning {
			t.Errorf("the server warns about the environment: %s", n.Text)
		}
	}
	if got := cfg.Cluster.MembershipPlugin(); got != "dns" {
		t.Fatalf("membership %q, want dns", got)
	}
	if cfg.Cluster.Secret == "" {
		t.Error("no cluster.secret: the members would accept anyone's messages")
	}
	block, err := dns.Plugin.Config.Check(cfg.Plugins["dns"].Config)
	if err != nil {
		t.Fatalf("plugins.dns.config: %v", err)
	}
	if _, err := dns.Plugin.New(block, membership.Host{}); err != nil {
		t.Fatalf("plugins.dns.config: %v", err)
	}
	var dnsCfg dns.Config
	if err := json.Unmarshal(block, &dnsCfg); err != nil {
		t.Fatal(err)
	}

	// The ports: the container's, the Services' and the configuration's agree.
	for name, want := range map[string]int{"http": cfg.Port, "grpc": cfg.GRPCPort(), "cluster": cfg.ClusterPort()} {
		if got := servicePorts[sts.ServiceName][name]; got != want {
			t.Errorf("Service %s: port %s goes to %d, the configuration's is %d", sts.ServiceName, name, got, want)
		}
	}
	for name, ports := range servicePorts {
		if name != sts.ServiceName && (ports["http"] != cfg.Port || ports["grpc"] != cfg.GRPCPort() || ports["grpc"] != ports["http"]+1000) {
			t.Errorf("Service %s: ports %v; clients need http %d and grpc at http + 1000 (%d)", name, ports, cfg.Port, cfg.GRPCPort())
		}
	}

	// The members find each other: the dns plugin resolves the headless
	// Service, and each member's address is what the answer names it.
	if dnsCfg.SRV {
		want := "_http._tcp." + sts.ServiceName
		if strings.TrimSuffix(dnsCfg.Name, ".") != want {
			t.Errorf("plugins.dns.config.name %q, want %q: the SRV records of the headless Service's port http", dnsCfg.Name, want)
		}
		self := fmt.Sprintf("%s-0.%s.default.svc.cluster.local:%d", stsName, sts.ServiceName, cfg.Port)
		if cfg.Cluster.Self != self {
			t.Errorf("the first pod's cluster.self is %q, want %q: its SRV target and port", cfg.Cluster.Self, self)
		}
	} else if strings.TrimSuffix(dnsCfg.Name, ".") != sts.ServiceName {
		t.Errorf("plugins.dns.config.name %q, want the headless Service %q", dnsCfg.Name, sts.ServiceName)
	}

	// Probes on the HTTP port.
	for _, p := range []struct {
		what  string
		probe *probe
		path  string
	}{
		{"readiness", c.ReadinessProbe, "/nacos/v1/console/health/readiness"},
		{"liveness", c.LivenessProbe, "/nacos/v1/console/health/liveness"},
	} {
		if p.probe == nil {
			t.Errorf("no %s probe", p.what)
			continue
		}
		if _, port := portOf(t, c, p.probe.HTTPGet.Port); p.probe.HTTPGet.Path != p.path || port != cfg.Port {
			t.Errorf("%s probe: GET %s on port %d, want %s on the HTTP port %d", p.what, p.probe.HTTPGet.Path, port, p.path, cfg.Port)
		}
	}

	// Storage: data_dir on the claim, and every mount a volume.
	claims := map[string]bool{}
	for _, vct := range sts.VolumeClaimTemplates {
		claims[vct.Metadata.Name] = true
		if vct.Spec.Resources.Requests["storage"] == "" {
			t.Errorf("volume claim %s requests no storage", vct.Metadata.Name)
		}
	}
	volumes := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = true
	}
	for name, mountPath := range mounts {
		if !claims[name] && !volumes[name] {
			t.Errorf("volume mount %s (%s) is no volume or claim", name, mountPath)
		}
		if mountPath == cfg.DataDir {
			dataClaim = name
		}
	}
	if !claims[dataClaim] {
		t.Errorf("data_dir %s is not on a PersistentVolumeClaim (mounts: %v)", cfg.DataDir, mounts)
	}

	// Security and resources.
	sc, csc := pod.Spec.SecurityContext, c.SecurityContext
	if !sc.RunAsNonRoot || sc.RunAsUser == 0 || !csc.ReadOnlyRootFilesystem || csc.AllowPrivilegeEscalation == nil ||
		*csc.AllowPrivilegeEscalation || !slices.Contains(csc.Capabilities.Drop, "ALL") {
		t.Errorf("security: runAsNonRoot %v, runAsUser %d, readOnlyRootFilesystem %v, allowPrivilegeEscalation %v, drop %v",
			sc.RunAsNonRoot, sc.RunAsUser, csc.ReadOnlyRootFilesystem, csc.AllowPrivilegeEscalation, csc.Capabilities.Drop)
	}
	if mounts["tmp"] != "/tmp" {
		t.Error("no writable /tmp: the plugins' Unix sockets go there, and the root filesystem is read-only")
	}
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		t.Error("enableServiceLinks is not false: a Service named sextant would set SEXTANT_* variables")
	}
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req["cpu"] == "" || req["memory"] == "" || lim["memory"] == "" || mebibytes(t, req["memory"]) > mebibytes(t, lim["memory"]) {
		t.Errorf("resources: requests %v, limits %v", req, lim)
	}
}

// TestUnknownFieldsFail checks that the strict decoding catches a typo.
func TestUnknownFieldsFail(t *testing.T) {
	var s statefulSetSpec
	if err := strict([]byte(`{"serviceNmae":"x"}`), &s); err == nil {
		t.Error("a misspelt field was accepted")
	}
}
