// Package podapi is what the plugin asks of the Kubernetes API, and the
// process boundary it asks across. ADD reads the pod (its UID and shared-dir
// volume) and publishes the attachment's configuration data on it; DEL
// takes that entry out again.
//
// The plugin does not make these requests itself: client-go initialises
// about a hundred packages before main, which every plugin process (VERSION,
// and every ADD and DEL without a kubeconfig) would pay for. It asks the
// node agent (cmd/userspace-agent), which keeps its clients and their API
// connections warm, on a socket in the plugin's state directory; without an
// agent, or one that does not serve the kubeconfig, it runs a helper
// process, cmd/userspace-kube, installed next to the plugin.
//
// Both speak one protocol: one JSON Request per line and one JSON Response
// per line, in order, on the socket or on the helper's stdin and stdout. A
// session keeps the pod it read between requests.
package podapi

import (
	"errors"
	"path/filepath"

	"github.com/userspace-cni/userspace/pkg/configdata"
)

// HelperName is the helper's file name, looked for next to the plugin.
const HelperName = "userspace-kube"

// AgentSocket is the node agent's socket's name in the plugin's state
// directory (root's alone).
const AgentSocket = "podapi.sock"

// AgentSocketIn is the agent's socket's path for the state directory dir.
func AgentSocketIn(dir string) string { return filepath.Join(dir, AgentSocket) }

// Operations of a Request.
const (
	// OpPod reads the pod and reports its shared directory. It must come
	// first in a session that publishes.
	OpPod = "pod"
	// OpPublish adds the configuration data to the pod read by OpPod.
	OpPublish = "publish"
	// OpUnpublish removes a container's interface entry from a pod.
	OpUnpublish = "unpublish"
)

// Request is one operation for the helper.
type Request struct {
	Op        string `json:"op"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Kubeconfig is the kubeconfig file (checked against the node policy),
	// RequestTimeoutMS the bound of each HTTP request.
	Kubeconfig       string `json:"kubeconfig"`
	RequestTimeoutMS int64  `json:"requestTimeoutMs"`
	// TimeoutMS bounds the operation, all its API requests and retries
	// included.
	TimeoutMS int64 `json:"timeoutMs"`

	// OpPod: the UID the runtime asked for (empty: any), the name of the
	// shared-dir volume and the kubelet's root directory (node policy).
	UID         string `json:"uid,omitempty"`
	Volume      string `json:"volume,omitempty"`
	KubeletRoot string `json:"kubeletRoot,omitempty"`

	// OpPublish: the entry, and the mapped-dir annotation ("" leaves it).
	ConfigData *configdata.ConfigData `json:"configData,omitempty"`
	MappedDir  string                 `json:"mappedDir,omitempty"`

	// OpUnpublish: the entry's key.
	ContainerID string `json:"containerId,omitempty"`
	IfName      string `json:"ifName,omitempty"`
}

// Response answers one Request.
type Response struct {
	// Pod answers OpPod.
	Pod *Pod `json:"pod,omitempty"`
	// Error is set when the operation failed.
	Error *WireError `json:"error,omitempty"`
	// Requests counts the HTTP requests the helper has sent so far.
	Requests int64 `json:"requests"`
}

// Pod is what ADD needs to know about the pod.
type Pod struct {
	UID string `json:"uid"`
	// Dir is the host directory of the pod's shared-dir volume, MappedDir
	// where the pod's containers see it (both "" without such a volume).
	Dir       string `json:"dir,omitempty"`
	MappedDir string `json:"mappedDir,omitempty"`
	// EmptyDir says the volume is an emptyDir, which no other pod sees.
	EmptyDir bool `json:"emptyDir,omitempty"`
}

// WireError is an *Error on the wire.
type WireError struct {
	Kind      string `json:"kind"`
	Verb      string `json:"verb,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Message   string `json:"message"`
}

// EncodeError puts err on the wire. An *Error keeps its kind and pod; any
// other error keeps the kind it matches, or is of kind kind.
func EncodeError(err error, kind error) *WireError {
	var e *Error
	if errors.As(err, &e) {
		w := &WireError{Kind: kindName(e.Kind), Verb: e.Verb, Namespace: e.Namespace, Name: e.Name}
		if e.Err != nil {
			w.Message = e.Err.Error()
		}
		return w
	}
	for _, k := range kindNames {
		if errors.Is(err, k) {
			kind = k
			break
		}
	}
	return &WireError{Kind: kindName(kind), Message: err.Error()}
}

// decode turns the wire form back into an *Error of the same kind.
func (w *WireError) decode() error {
	kind, ok := kindNames[w.Kind]
	if !ok {
		kind = ErrAPI
	}
	var cause error
	if w.Message != "" {
		cause = errors.New(w.Message)
	}
	if w.Verb == "" {
		// Not about one pod request: the kubeconfig, the volume.
		if cause == nil {
			return kind
		}
		return &kindError{kind: kind, err: cause}
	}
	return &Error{Verb: w.Verb, Namespace: w.Namespace, Name: w.Name, Kind: kind, Err: cause}
}

// kindError is a failure of a kind that is not about one pod request; its
// message is the cause's alone.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }
