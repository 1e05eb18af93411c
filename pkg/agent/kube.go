package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeClient is Kube over client-go, with only what the agent's RBAC
// grants: list pods (of this node, by field selector) and create events.
type KubeClient struct {
	cs   kubernetes.Interface
	node string
	host string
}

// NewKubeClient connects with a kubeconfig file, or in-cluster when it is
// empty (the DaemonSet's service account).
func NewKubeClient(kubeconfig, node string) (*KubeClient, error) {
	if node == "" {
		return nil, fmt.Errorf("the node name is needed to list this node's pods")
	}
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes client configuration: %w", err)
	}
	cfg.Timeout = 10 * time.Second
	cfg.UserAgent = "userspace-cni-agent"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &KubeClient{cs: cs, node: node, host: node}, nil
}

// Pods lists this node's pods, "namespace/name" to UID.
func (k *KubeClient) Pods(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", k.node).String(), Limit: 500}
	for {
		list, err := k.cs.CoreV1().Pods("").List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing the pods of node %s: %w", k.node, err)
		}
		for _, p := range list.Items {
			out[p.Namespace+"/"+p.Name] = string(p.UID)
		}
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

// Event records an event on a pod (core/v1 Events, which kubectl describe
// shows).
func (k *KubeClient) Event(ctx context.Context, ref PodRef, eventType, reason, message string) error {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: ref.Name + ".", Namespace: ref.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ref.Namespace,
			Name: ref.Name, UID: types.UID(ref.UID)},
		Reason: reason, Message: message, Type: eventType,
		Source:         corev1.EventSource{Component: "userspace-cni-agent", Host: k.host},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "userspace-cni.io/agent", ReportingInstance: "userspace-cni-agent-" + k.node,
	}
	if _, err := k.cs.CoreV1().Events(ref.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating event %s on pod %s/%s: %w", reason, ref.Namespace, ref.Name, err)
	}
	return nil
}
