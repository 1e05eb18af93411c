// Package kubetest runs a real kube-apiserver and etcd (controller-runtime's
// envtest) for tests of the plugin's Kubernetes side, set up as the deploy/
// manifests set up a cluster: the NetworkAttachmentDefinition CRD from
// deploy/crd-network-attachment-definition.yaml, and the ServiceAccounts,
// ClusterRoles and ClusterRoleBindings (the plugin's and the node agent's)
// from deploy/userspace-cni.yaml, applied as they are. The plugin's identity
// in tests is a user bound to the plugin's ClusterRole and nothing else, so
// tests prove the manifests' permissions are enough.
//
// The binaries come from KUBEBUILDER_ASSETS, or else from
// hack/kube-assets.sh (the first run builds kube-apiserver: minutes).
// There is no controller-manager, scheduler or kubelet: pods stay Pending.
package kubetest

import (
	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Names the harness gives the plugin's identities.
const (
	// PluginUser is the envtest user bound to the manifests' ClusterRole.
	PluginUser = "userspace-cni-plugin"
	// pluginUserBinding binds PluginUser to the ClusterRole.
	pluginUserBinding = "userspace-cni-test-user"
)

// The manifests' identities: the plugin's (the installer's DaemonSet, whose
// token the plugin's kubeconfig carries) and the node agent's, each a
// ServiceAccount in kube-system bound to the ClusterRole of the same name.
const (
	PluginIdentity = "userspace-cni"
	AgentIdentity  = "userspace-cni-agent"
	// IdentityNamespace is the namespace of both ServiceAccounts.
	IdentityNamespace = "kube-system"
)

// ServiceAccountUser is the user name and groups a ServiceAccount of
// IdentityNamespace authenticates as.
func ServiceAccountUser(name string) (string, []string) {
	return "system:serviceaccount:" + IdentityNamespace + ":" + name,
		[]string{"system:serviceaccounts", "system:serviceaccounts:" + IdentityNamespace, "system:authenticated"}
}

// Manifest files under deploy/.
const (
	ManifestFile = "deploy/userspace-cni.yaml"
	CRDFile      = "deploy/crd-network-attachment-definition.yaml"
)

// NADResource is the NetworkAttachmentDefinition resource.
func NADResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"}
}

// Env is a running API server.
type Env struct {
	// RepoRoot is the repository's top directory.
	RepoRoot string
	// Admin is a system:masters configuration.
	Admin *rest.Config
	// Clientset and Dynamic are admin clients.
	Clientset kubernetes.Interface
	Dynamic   dynamic.Interface
	// PluginKubeconfig is a kubeconfig file for PluginUser.
	PluginKubeconfig string
	// ClusterRole is the manifests' ClusterRole of the plugin.
	ClusterRole string

	env *envtest.Environment
	dir string
}

// Start starts etcd and kube-apiserver, installs the CRD and the manifests'
// RBAC objects, and writes the plugin user's kubeconfig. On error,
// everything already started is stopped.
func Start() (_ *Env, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := Assets(root)
	if err != nil {
		return nil, err
	}
	// envtest logs through controller-runtime's logger; without one set it
	// prints a stack trace warning about it.
	ctrllog.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "usp-kubetest-")
	if err != nil {
		return nil, err
	}
	e := &Env{RepoRoot: root, dir: dir}
	e.env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, CRDFile)},
		ErrorIfCRDPathMissing: true,
	}
	if e.Admin, err = e.env.Start(); err != nil {
		_ = e.env.Stop()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	defer func() {
		if err != nil {
			_ = e.Stop()
		}
	}()
	if e.Clientset, err = kubernetes.NewForConfig(e.Admin); err != nil {
		return nil, err
	}
	if e.Dynamic, err = dynamic.NewForConfig(e.Admin); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.applyRBAC(ctx); err != nil {
		return nil, err
	}
	if e.PluginKubeconfig, err = e.UserKubeconfig(PluginUser); err != nil {
		return nil, err
	}
	if err := e.bindUser(ctx, pluginUserBinding, e.ClusterRole, PluginUser); err != nil {
		return nil, err
	}
	for _, verb := range []string{"get", "patch"} {
		if err := e.WaitAllowed(ctx, PluginUser, nil, verb, "pods", "default"); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Stop stops the API server and etcd and removes the harness's files.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if rerr := os.RemoveAll(e.dir); err == nil {
		err = rerr
	}
	return err
}

// Dir is a directory for the test's files, removed by Stop.
func (e *Env) Dir() string { return e.dir }

// Require fails the test when the API server could not be started. It
// never skips: a missing kube-apiserver or etcd is a broken test bed, in CI
// and elsewhere (hack/kube-assets.sh builds or installs them).
func Require(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("no API server: %v", err)
	}
}

// RepoRoot finds the module's top directory from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module github.com/userspace-cni/userspace\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod of github.com/userspace-cni/userspace) not found above the working directory")
		}
		dir = parent
	}
}

// Assets returns the directory with kube-apiserver and etcd: KUBEBUILDER_ASSETS
// if set, else what hack/kube-assets.sh prints (it builds and caches
// kube-apiserver on first use and installs etcd if missing).
func Assets(root string) (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		for _, b := range []string{"kube-apiserver", "etcd"} {
			if _, err := os.Stat(filepath.Join(d, b)); err != nil {
				return "", fmt.Errorf("KUBEBUILDER_ASSETS=%s: %w", d, err)
			}
		}
		return d, nil
	}
	script := filepath.Join(root, "hack", "kube-assets.sh")
	cmd := exec.Command("bash", script)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr // build progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	d := lines[len(lines)-1]
	if d == "" || !filepath.IsAbs(d) {
		return "", fmt.Errorf("%s printed %q, not an assets directory", script, stdout.String())
	}
	return d, nil
}

// LoadManifests decodes every YAML document of a file into objects; empty
// documents are dropped.
func LoadManifests(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: document %d: %w", path, len(out)+1, err)
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// rbacResource maps the manifests' identity and RBAC kinds to resources.
func rbacResource(kind string) (schema.GroupVersionResource, bool) {
	switch kind {
	case "ServiceAccount":
		return schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, true
	case "ClusterRole":
		return rbacv1.SchemeGroupVersion.WithResource("clusterroles"), true
	case "ClusterRoleBinding":
		return rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings"), true
	}
	return schema.GroupVersionResource{}, false
}

// applyRBAC creates the manifests' ServiceAccounts, ClusterRoles and
// ClusterRoleBindings unchanged.
func (e *Env) applyRBAC(ctx context.Context) error {
	objs, err := LoadManifests(filepath.Join(e.RepoRoot, ManifestFile))
	if err != nil {
		return err
	}
	for _, o := range objs {
		gvr, ok := rbacResource(o.GetKind())
		if !ok {
			continue
		}
		var ri dynamic.ResourceInterface = e.Dynamic.Resource(gvr)
		if ns := o.GetNamespace(); ns != "" {
			ri = e.Dynamic.Resource(gvr).Namespace(ns)
		}
		if _, err := ri.Create(ctx, o, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating %s %s from %s: %w", o.GetKind(), o.GetName(), ManifestFile, err)
		}
		if o.GetKind() == "ClusterRole" && o.GetName() == PluginIdentity {
			e.ClusterRole = o.GetName()
		}
	}
	if e.ClusterRole == "" {
		return fmt.Errorf("%s has no ClusterRole %s", ManifestFile, PluginIdentity)
	}
	return nil
}

// bindUser binds user to clusterRole.
func (e *Env) bindUser(ctx context.Context, name, clusterRole, user string) error {
	_, err := e.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("binding user %s to ClusterRole %s: %w", user, clusterRole, err)
	}
	return nil
}

// BindUser binds user to clusterRole (a ClusterRoleBinding named name) and
// waits until the authorizer allows verb on pods.
func (e *Env) BindUser(ctx context.Context, name, clusterRole, user, verb string) error {
	if err := e.bindUser(ctx, name, clusterRole, user); err != nil {
		return err
	}
	return e.WaitAllowed(ctx, user, nil, verb, "pods", "default")
}

// WaitAllowed waits until the authorizer (whose caches lag behind RBAC
// writes) allows user verb on resource in namespace.
func (e *Env) WaitAllowed(ctx context.Context, user string, groups []string, verb, resource, namespace string) error {
	for {
		ok, err := e.Allowed(ctx, user, groups, verb, resource, namespace)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("user %s is still not allowed to %s %s: %w", user, verb, resource, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Allowed asks the authorizer whether user may verb resource (core group;
// "resource/subresource" names a subresource) in namespace.
func (e *Env) Allowed(ctx context.Context, user string, groups []string, verb, resource, namespace string) (bool, error) {
	// "pods/log" is the subresource log of pods.
	res, sub, _ := strings.Cut(resource, "/")
	r, err := e.Clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: verb, Resource: res, Subresource: sub},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("access review for %s: %w", user, err)
	}
	return r.Status.Allowed, nil
}

// UserKubeconfig provisions a user (client certificate) and writes a
// kubeconfig for it; the user has no permissions until bound.
func (e *Env) UserKubeconfig(name string, groups ...string) (string, error) {
	u, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return "", fmt.Errorf("adding user %s: %w", name, err)
	}
	return e.WriteKubeconfig(name, u.Config())
}

// ServiceAccountToken issues a token for a service account (TokenRequest),
// as the kubelet does for the DaemonSet's pod.
func (e *Env) ServiceAccountToken(ctx context.Context, namespace, name string) (string, error) {
	exp := int64(3600)
	tr, err := e.Clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for service account %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}

// WriteKubeconfig writes cfg (server, CA, client certificate or token) as a
// kubeconfig file named name in the harness directory.
func (e *Env) WriteKubeconfig(name string, cfg *rest.Config) (string, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken,
	}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: name}
	kc.CurrentContext = name
	path := filepath.Join(e.dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return "", fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return path, nil
}

// CreateNamespace creates a namespace.
func (e *Env) CreateNamespace(ctx context.Context, name string) error {
	_, err := e.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// CreatePod creates pod (one container "app" if it has none) and returns
// it as stored.
func (e *Env) CreatePod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	if len(pod.Spec.Containers) == 0 {
		pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "dpdk-app:latest"}}
	}
	p, err := e.Clientset.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return p, nil
}

// DeletePod deletes a pod at once (no kubelet runs to finish a graceful
// deletion).
func (e *Env) DeletePod(ctx context.Context, namespace, name string) error {
	zero := int64(0)
	return e.Clientset.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
}

// CreateNAD creates a NetworkAttachmentDefinition with config as spec.config.
func (e *Env) CreateNAD(ctx context.Context, namespace, name, config string) error {
	nad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1",
		"kind":       "NetworkAttachmentDefinition",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec":       map[string]any{"config": config},
	}}
	if _, err := e.Dynamic.Resource(NADResource()).Namespace(namespace).Create(ctx, nad, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating NetworkAttachmentDefinition %s/%s: %w", namespace, name, err)
	}
	return nil
}

// NADConfig returns a NetworkAttachmentDefinition's spec.config.
func (e *Env) NADConfig(ctx context.Context, namespace, name string) (string, error) {
	u, err := e.Dynamic.Resource(NADResource()).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("getting NetworkAttachmentDefinition %s/%s: %w", namespace, name, err)
	}
	c, _, err := unstructured.NestedString(u.Object, "spec", "config")
	if err != nil {
		return "", fmt.Errorf("NetworkAttachmentDefinition %s/%s spec.config: %w", namespace, name, err)
	}
	return c, nil
}
