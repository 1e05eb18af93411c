// Package kube is the plugin's Kubernetes client: it reads the pod being
// attached and publishes the attachment's configuration data on it as
// annotations (the original plugin's format).
//
// Every CNI call is a new process, so the package stays small: a REST client
// for core/v1 pods with a scheme of its own that knows only core/v1, instead
// of client-go's Clientset and its all-groups scheme. A pod ADD costs one GET
// and one PATCH, a DEL one GET and at most one PATCH.
package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/userspace-cni/userspace/pkg/podapi"
)

// DefaultTimeout bounds each request when New is given no timeout.
const DefaultTimeout = 10 * time.Second

// Client-side rate limits. A plugin process makes a handful of requests; the
// limits only matter for a conflict-retry loop, which they must not stall.
const (
	clientQPS   = 20
	clientBurst = 40
)

// userAgent names the plugin in the API server's audit log.
const userAgent = "userspace-cni"

// maxRetries bounds client-go's own retries of one request (answers with
// Retry-After, a reset GET); its default of 10 could hold a DEL for many
// seconds while the API server sheds load.
const maxRetries = 2

// Client talks to the API server about pods. It is safe for concurrent use.
type Client struct {
	rc         *rest.RESTClient
	httpClient *http.Client
	requests   *atomic.Int64
	// attempts bounds the optimistic-concurrency retries of a PATCH.
	attempts int
}

// New loads the kubeconfig file at path (the caller has checked it against
// the node policy) and returns a client whose every request is bounded by
// timeout (DefaultTimeout if zero or less). Only that file is read: no
// KUBECONFIG, no in-cluster fallback. Relative file references in the
// kubeconfig (certificate-authority, tokenFile, ...) resolve against its
// directory. A service-account tokenFile is re-read as the token rotates.
func New(kubeconfig string, timeout time.Duration) (*Client, error) {
	if kubeconfig == "" {
		return nil, errors.New("kubeconfig path is empty")
	}
	raw, err := (&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}).Load()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	c, err := NewForConfig(cfg, timeout)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return c, nil
}

// NewForConfig returns a client for an already built rest.Config (tests,
// or callers with their own loader). cfg is copied, not modified.
func NewForConfig(cfg *rest.Config, timeout time.Duration) (*Client, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = timeout
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	if cfg.UserAgent == "" {
		cfg.UserAgent = userAgent
	}
	// client-go shares one connection pool between clients with equal TLS
	// settings unless a proxy function is set; a Client of its own keeps
	// its own connections, as a separate plugin process would. This is
	// client-go's default proxy behaviour, unchanged.
	if cfg.Proxy == nil {
		cfg.Proxy = utilnet.NewProxierWithNoProxyCIDR(http.ProxyFromEnvironment)
	}
	requests := &atomic.Int64{}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &countingTransport{next: rt, n: requests}
	})
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = podCodecs().WithoutConversion()
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building HTTP client: %w", err)
	}
	rc, err := rest.RESTClientForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("building REST client: %w", err)
	}
	return &Client{rc: rc, httpClient: httpClient, requests: requests, attempts: defaultAttempts}, nil
}

// podCodecs knows core/v1 (and meta/v1 Status for errors) and nothing else:
// registering every API group, as client-go's scheme does, costs each
// plugin process start-up time for types it never sees.
func podCodecs() serializer.CodecFactory {
	s := runtime.NewScheme()
	// AddToScheme only fails on a conflicting registration, impossible in
	// a fresh scheme.
	_ = corev1.AddToScheme(s)
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return serializer.NewCodecFactory(s)
}

// Requests is the number of HTTP requests the client has sent (retries
// included), for benchmarks and tests.
func (c *Client) Requests() int64 { return c.requests.Load() }

// Close drops the client's idle connections.
func (c *Client) Close() { c.httpClient.CloseIdleConnections() }

// Pod fetches namespace/name. A non-empty wantUID (K8S_POD_UID) that differs
// from the pod's UID is an podapi.ErrUIDMismatch error naming both: the pod was
// re-created under the same name and this attachment belongs to the old one.
func (c *Client) Pod(ctx context.Context, namespace, name, wantUID string) (*corev1.Pod, error) {
	pod, err := c.get(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	if wantUID != "" && string(pod.UID) != wantUID {
		return nil, &podapi.Error{Verb: "get", Namespace: namespace, Name: name, Kind: podapi.ErrUIDMismatch,
			Err: fmt.Errorf("the API has UID %s, the runtime asked for UID %s", pod.UID, wantUID)}
	}
	return pod, nil
}

func (c *Client) get(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	if err := checkPodName(namespace, name); err != nil {
		return nil, err
	}
	pod := &corev1.Pod{}
	if err := c.rc.Get().MaxRetries(maxRetries).Namespace(namespace).Resource("pods").Name(name).Do(ctx).Into(pod); err != nil {
		return nil, classify("get", namespace, name, err)
	}
	return pod, nil
}

func checkPodName(namespace, name string) error {
	if namespace == "" || name == "" {
		return fmt.Errorf("pod namespace %q and name %q are both required (K8S_POD_NAMESPACE, K8S_POD_NAME)", namespace, name)
	}
	return nil
}

// countingTransport counts requests on their way out.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(r)
}

// WrappedRoundTripper lets client-go's helpers reach the transport below.
func (t *countingTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

// CloseIdleConnections passes Close through to the real transport.
func (t *countingTransport) CloseIdleConnections() { utilnet.CloseIdleConnectionsFor(t.next) }
