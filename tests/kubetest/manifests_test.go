package kubetest_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/kubetest"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// strict decodes an object into a typed struct, refusing unknown fields (a
// misspelt field would otherwise be dropped silently by the API server).
func strict(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	data, err := json.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

func TestManifestsParse(t *testing.T) {
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "deploy", "*.y*ml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("manifests under deploy/: %v, %v", files, err)
	}
	kinds := map[string][]*unstructured.Unstructured{}
	for _, f := range files {
		objs, err := kubetest.LoadManifests(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) == 0 {
			t.Errorf("%s holds no object", f)
		}
		for _, o := range objs {
			if o.GetAPIVersion() == "" || o.GetKind() == "" || o.GetName() == "" {
				t.Errorf("%s: object without apiVersion, kind or name: %v", f, o.Object)
			}
			kinds[o.GetKind()] = append(kinds[o.GetKind()], o)
		}
	}
	for k, n := range map[string]int{"ServiceAccount": 2, "ClusterRole": 2, "ClusterRoleBinding": 2, "ConfigMap": 1, "DaemonSet": 2, "CustomResourceDefinition": 1} {
		if len(kinds[k]) != n {
			t.Fatalf("want %d %s under deploy/, found %d", n, k, len(kinds[k]))
		}
	}
	for k := range kinds {
		switch k {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "CustomResourceDefinition":
		default:
			t.Errorf("unexpected kind %s under deploy/", k)
		}
	}
	named := func(kind, name string) *unstructured.Unstructured {
		t.Helper()
		for _, o := range kinds[kind] {
			if o.GetName() == name {
				return o
			}
		}
		t.Fatalf("no %s %s under deploy/", kind, name)
		return nil
	}

	// Two identities, each with least privilege: the plugin's get and
	// patch on pods; the node agent's list on pods and create on events.
	// Each ServiceAccount is bound to its own ClusterRole and nothing else.
	for id, want := range map[string]map[string][]string{
		kubetest.PluginIdentity: {"pods": {"get", "patch"}},
		kubetest.AgentIdentity:  {"pods": {"list"}, "events": {"create"}},
	} {
		var sa corev1.ServiceAccount
		strict(t, named("ServiceAccount", id), &sa)
		if sa.Namespace != kubetest.IdentityNamespace {
			t.Errorf("ServiceAccount %s in namespace %q, want %s", id, sa.Namespace, kubetest.IdentityNamespace)
		}
		var role rbacv1.ClusterRole
		strict(t, named("ClusterRole", id), &role)
		if role.AggregationRule != nil {
			t.Fatalf("ClusterRole %s aggregates %v", role.Name, role.AggregationRule)
		}
		granted := map[string][]string{} // resource -> verbs
		for _, r := range role.Rules {
			if !slices.Equal(r.APIGroups, []string{""}) || len(r.Resources) != 1 || len(r.ResourceNames) != 0 || len(r.NonResourceURLs) != 0 {
				t.Errorf("ClusterRole %s rule %+v: want core-group rules on one resource each", role.Name, r)
				continue
			}
			granted[r.Resources[0]] = append(granted[r.Resources[0]], r.Verbs...)
		}
		for res, verbs := range want {
			if got := slices.Sorted(slices.Values(granted[res])); !slices.Equal(got, verbs) {
				t.Errorf("ClusterRole %s grants %v on %s, want %v", role.Name, got, res, verbs)
			}
			delete(granted, res)
		}
		if len(granted) != 0 {
			t.Errorf("ClusterRole %s grants more: %v", role.Name, granted)
		}
		var binding rbacv1.ClusterRoleBinding
		strict(t, named("ClusterRoleBinding", id), &binding)
		if binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != role.Name || binding.RoleRef.APIGroup != rbacv1.GroupName {
			t.Errorf("ClusterRoleBinding %s refers to %+v, want ClusterRole %s", binding.Name, binding.RoleRef, role.Name)
		}
		if len(binding.Subjects) != 1 || binding.Subjects[0].Kind != rbacv1.ServiceAccountKind ||
			binding.Subjects[0].Name != sa.Name || binding.Subjects[0].Namespace != sa.Namespace {
			t.Errorf("ClusterRoleBinding %s subjects %+v, want only the ServiceAccount %s/%s", binding.Name, binding.Subjects, sa.Namespace, sa.Name)
		}
	}

	var ds, ads appsv1.DaemonSet
	strict(t, named("DaemonSet", kubetest.PluginIdentity), &ds)
	strict(t, named("DaemonSet", kubetest.AgentIdentity), &ads)
	spec := ds.Spec.Template.Spec
	if spec.ServiceAccountName != kubetest.PluginIdentity || ds.Namespace != kubetest.IdentityNamespace {
		t.Errorf("DaemonSet %s/%s runs as %q, want the plugin's ServiceAccount %s", ds.Namespace, ds.Name, spec.ServiceAccountName, kubetest.PluginIdentity)
	}
	if as := ads.Spec.Template.Spec; as.ServiceAccountName != kubetest.AgentIdentity || ads.Namespace != kubetest.IdentityNamespace {
		t.Errorf("DaemonSet %s/%s runs as %q, want the agent's ServiceAccount %s", ads.Namespace, ads.Name, as.ServiceAccountName, kubetest.AgentIdentity)
	}
	if len(spec.Containers) != 1 || spec.Containers[0].Name != "install" {
		t.Fatalf("DaemonSet %s: %d containers, want the installer alone", ds.Name, len(spec.Containers))
	}
	if as := ads.Spec.Template.Spec; len(as.Containers) != 1 || as.Containers[0].Name != "agent" {
		t.Fatalf("DaemonSet %s: %d containers, want the agent alone", ads.Name, len(as.Containers))
	}
	c := spec.Containers[0]
	checkAgent(t, ads.Spec.Template.Spec, c.Image)
	if c.Image != "userspace-cni:latest" {
		t.Errorf("DaemonSet image %q", c.Image)
	}
	if len(c.Command) != 1 || filepath.Base(c.Command[0]) != "userspace-cni-install.sh" {
		t.Errorf("DaemonSet command %v, want the installer deploy/userspace-cni-install.sh", c.Command)
	}
	if _, err := os.Stat(filepath.Join(root, "deploy", "userspace-cni-install.sh")); err != nil {
		t.Error(err)
	}
	if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("DaemonSet container security context %+v: want unprivileged with all capabilities dropped", c.SecurityContext)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	hostPaths := map[string]string{} // volume name -> host path
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounted := map[string]string{} // host path -> container path
	for _, m := range c.VolumeMounts {
		if hp, ok := hostPaths[m.Name]; ok {
			mounted[hp] = m.MountPath
		}
	}
	kubeconfigDir, policyFile := env["KUBECONFIG_DIR"], env["POLICY_FILE"]
	for _, hp := range []string{"/opt/cni/bin", kubeconfigDir, filepath.Dir(policyFile)} {
		if want := env["HOST_ROOT"] + hp; mounted[hp] != want {
			t.Errorf("host directory %s mounted at %q, want %q", hp, mounted[hp], want)
		}
	}
	if policyFile != policy.DefaultPath {
		t.Errorf("POLICY_FILE %q, the plugin reads %s", policyFile, policy.DefaultPath)
	}

	// The policy the installer writes lets the plugin read its kubeconfig.
	var cm corev1.ConfigMap
	strict(t, kinds["ConfigMap"][0], &cm)
	pf := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(pf, []byte(cm.Data["policy.json"]), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(testbed.PolicyGetenv(pf))
	if err != nil {
		t.Fatalf("ConfigMap %s policy.json: %v", cm.Name, err)
	}
	if _, _, err := pol.Match(policy.Kubeconfig, filepath.Join(kubeconfigDir, "userspace.kubeconfig")); err != nil {
		t.Errorf("the policy refuses the installed kubeconfig: %v", err)
	}
	if !slices.Equal(pol.KubeconfigDirs, []string{kubeconfigDir}) {
		t.Errorf("policy kubeconfigDirs %v, want only %s", pol.KubeconfigDirs, kubeconfigDir)
	}
	var policyVolume bool
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name && filepath.Join(m.MountPath, "policy.json") == env["POLICY_SOURCE"] {
					policyVolume = true
				}
			}
		}
	}
	if !policyVolume {
		t.Errorf("ConfigMap %s is not mounted where POLICY_SOURCE (%s) points", cm.Name, env["POLICY_SOURCE"])
	}

	var crd apiextensionsv1.CustomResourceDefinition
	strict(t, kinds["CustomResourceDefinition"][0], &crd)
	if crd.Spec.Group != "k8s.cni.cncf.io" || crd.Spec.Names.Plural != "network-attachment-definitions" ||
		crd.Spec.Names.Kind != "NetworkAttachmentDefinition" || crd.Spec.Scope != apiextensionsv1.NamespaceScoped ||
		crd.Name != "network-attachment-definitions.k8s.cni.cncf.io" {
		t.Errorf("CRD %s: %+v", crd.Name, crd.Spec.Names)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != "v1" || !crd.Spec.Versions[0].Served || !crd.Spec.Versions[0].Storage {
		t.Fatalf("CRD versions %+v, want v1 served and stored", crd.Spec.Versions)
	}
	schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	if cfg := schema.Properties["spec"].Properties["config"]; cfg.Type != "string" {
		t.Errorf("CRD spec.config has type %q, want string", cfg.Type)
	}
	if !strings.HasPrefix(kinds["CustomResourceDefinition"][0].GetAPIVersion(), "apiextensions.k8s.io/v1") {
		t.Error("CRD is not apiextensions.k8s.io/v1")
	}
}

// pluginKubeconfigDir is where the installer writes the plugin's kubeconfig;
// the agent reads it there to answer the plugin's pod requests.
const pluginKubeconfigDir = "/etc/cni/net.d/userspace.d"

// checkAgent checks the agent DaemonSet's node agent container: the
// installer's image and command userspace-agent, unprivileged, ready when
// /readyz says so, its node's name, the policy ConfigMap where
// USERSPACE_CNI_POLICY points, the default policy's host directories at
// their host paths (the plugin's records name those paths), and what an
// orphan's IPAM DEL needs: the CNI plugins read-only, host-local's
// allocations read-write.
func checkAgent(t *testing.T, spec corev1.PodSpec, image string) {
	t.Helper()
	c := spec.Containers[0]
	if c.Image != image || len(c.Command) == 0 || filepath.Base(c.Command[0]) != "userspace-agent" {
		t.Errorf("agent container image %q command %v, want the installer's image and userspace-agent", c.Image, c.Command)
	}
	if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("agent security context %+v: want unprivileged, no escalation, all capabilities dropped", c.SecurityContext)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("agent readiness probe %+v, want GET /readyz", c.ReadinessProbe)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("agent liveness probe %+v, want GET /healthz", c.LivenessProbe)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if f := env["NODE_NAME"].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("agent NODE_NAME %+v, want the pod's spec.nodeName", env["NODE_NAME"])
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	var policyMounted bool
	hostMounts := map[string]bool{}
	readOnly := map[string]bool{}
	for _, m := range c.VolumeMounts {
		readOnly[m.MountPath] = m.ReadOnly
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("agent mounts volume %q, which its pod does not have", m.Name)
		}
		switch {
		case v.ConfigMap != nil:
			policyMounted = policyMounted || filepath.Join(m.MountPath, "policy.json") == env[policy.PathEnv].Value
		case v.HostPath != nil:
			if v.HostPath.Path != m.MountPath {
				t.Errorf("agent mounts host %s at %s: the records name host paths", v.HostPath.Path, m.MountPath)
			}
			hostMounts[m.MountPath] = true
		}
	}
	if !policyMounted {
		t.Errorf("agent: the policy ConfigMap is not where %s (%q) points", policy.PathEnv, env[policy.PathEnv].Value)
	}
	// mountOf is the mount a directory is reached through: itself or its
	// nearest mounted ancestor.
	mountOf := func(dir string) string {
		for d := dir; ; d = filepath.Dir(d) {
			if hostMounts[d] {
				return d
			}
			if d == "/" {
				return ""
			}
		}
	}
	def := policy.Default()
	for _, dir := range []string{def.StateDir, filepath.Dir(strings.TrimPrefix(def.OVSDBSocket, "unix:")), filepath.Dir(def.VPPAPISocket),
		"/var/lib/cni/vhostuser", filepath.Join(def.KubeletRoot, "pods"), "/opt/cni/bin", "/var/lib/cni/networks", pluginKubeconfigDir} {
		m := mountOf(dir)
		if m == "" {
			t.Errorf("agent: host directory %s not mounted (mounted: %v)", dir, hostMounts)
			continue
		}
		if want := dir == "/opt/cni/bin" || dir == pluginKubeconfigDir; readOnly[m] != want {
			t.Errorf("agent: host directory %s mounted read-only %v, want %v", dir, readOnly[m], want)
		}
	}
	// A server-mode socket is re-exposed by a hard link, which cannot
	// cross mounts: the notes' socket directory and an OVS run directory
	// under /var/lib/cni must be reached through one mount.
	if a, b := mountOf("/var/lib/cni/vhostuser"), mountOf("/var/lib/cni/openvswitch"); a != b {
		t.Errorf("agent: /var/lib/cni/vhostuser (mount %s) and /var/lib/cni/openvswitch (mount %s) are on different mounts", a, b)
	}
}
