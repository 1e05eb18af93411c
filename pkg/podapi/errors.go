package podapi

import (
	"errors"
	"fmt"
)

// Kinds of failure, for errors.Is. Every error a pod request returns is an
// *Error that matches exactly one of them (ErrAPI when none of the others
// fits). The helper process sends the kind by name (kindNames), so the
// plugin classifies its failures without linking the API machinery.
var (
	// ErrNotFound: the pod does not exist (any more).
	ErrNotFound = errors.New("pod not found")
	// ErrForbidden: RBAC denied the verb; the ClusterRole or its binding
	// is missing or lacks the verb.
	ErrForbidden = errors.New("forbidden by RBAC (the plugin's ClusterRole needs get and patch on pods)")
	// ErrUnauthorized: the API server rejected the credentials (an expired
	// or revoked service-account token, a wrong client certificate).
	ErrUnauthorized = errors.New("credentials rejected by the API server")
	// ErrUnreachable: no answer from the API server (connection refused,
	// DNS, TLS, timeout) or it is overloaded or unavailable (429, 5xx); also
	// a helper process that does not answer in time.
	ErrUnreachable = errors.New("API server unreachable or unavailable")
	// ErrConflict: the pod kept changing under us until the bounded
	// number of optimistic-concurrency retries ran out.
	ErrConflict = errors.New("pod changed concurrently too often (resourceVersion conflicts)")
	// ErrUIDMismatch: the pod by that name is not the pod the runtime
	// meant (it was deleted and re-created with the same name).
	ErrUIDMismatch = errors.New("pod UID mismatch")
	// ErrAPI: any other error status from the API server.
	ErrAPI = errors.New("API request failed")
	// ErrConfig: the kubeconfig cannot be used, or the pod's shared-dir
	// volume is unusable: something in the configuration to fix, not to
	// retry.
	ErrConfig = errors.New("invalid configuration")
	// ErrUnserved: the node agent does not serve this kubeconfig (it does
	// not see the file, or its policy does not allow it); the plugin then
	// runs the helper.
	ErrUnserved = errors.New("kubeconfig not served by the node agent")
)

// kindNames are the kinds' names on the wire.
var kindNames = map[string]error{
	"not-found":    ErrNotFound,
	"forbidden":    ErrForbidden,
	"unauthorized": ErrUnauthorized,
	"unreachable":  ErrUnreachable,
	"conflict":     ErrConflict,
	"uid-mismatch": ErrUIDMismatch,
	"api":          ErrAPI,
	"config":       ErrConfig,
	"unserved":     ErrUnserved,
}

// kindName is kind's wire name ("api" for an unknown kind).
func kindName(kind error) string {
	for n, k := range kindNames {
		if k == kind {
			return n
		}
	}
	return "api"
}

// Error is a failed request for one pod.
type Error struct {
	Verb      string // "get" or "patch"
	Namespace string
	Name      string
	Kind      error // one of the Err* sentinels
	Err       error // the underlying error (an API status error, a transport error, ...)
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%s pod %s/%s: %v", e.Verb, e.Namespace, e.Name, e.Kind)
	}
	return fmt.Sprintf("%s pod %s/%s: %v: %v", e.Verb, e.Namespace, e.Name, e.Kind, e.Err)
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// IsNotFound reports whether err means the pod does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsForbidden reports whether RBAC denied a request.
func IsForbidden(err error) bool { return errors.Is(err, ErrForbidden) }

// IsUnauthorized reports whether the credentials were rejected.
func IsUnauthorized(err error) bool { return errors.Is(err, ErrUnauthorized) }

// IsUnreachable reports whether the API server could not be reached (or
// was unavailable) within the bounds.
func IsUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }

// IsUIDMismatch reports whether the pod found is not the one asked for.
func IsUIDMismatch(err error) bool { return errors.Is(err, ErrUIDMismatch) }

// IsConflict reports whether optimistic-concurrency retries ran out.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsConfig reports whether the kubeconfig or the pod's volume is unusable.
func IsConfig(err error) bool { return errors.Is(err, ErrConfig) }
