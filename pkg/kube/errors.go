package kube

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Kinds of failure, for errors.Is. Every error the Client returns for a pod
// request is an *Error that matches exactly one of them (ErrAPI when none of
// the others fits) and still unwraps to the API's own status error, so
// apierrors.IsNotFound and friends work as well.
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
	// DNS, TLS, timeout) or it is overloaded or unavailable (429, 5xx).
	ErrUnreachable = errors.New("API server unreachable or unavailable")
	// ErrConflict: the pod kept changing under us until the bounded
	// number of optimistic-concurrency retries ran out.
	ErrConflict = errors.New("pod changed concurrently too often (resourceVersion conflicts)")
	// ErrUIDMismatch: the pod by that name is not the pod the runtime
	// meant (it was deleted and re-created with the same name).
	ErrUIDMismatch = errors.New("pod UID mismatch")
	// ErrAPI: any other error status from the API server.
	ErrAPI = errors.New("API request failed")
)

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

// classify wraps err from verb on pod namespace/name with its kind.
func classify(verb, namespace, name string, err error) error {
	return &Error{Verb: verb, Namespace: namespace, Name: name, Kind: kindOf(err), Err: err}
}

func kindOf(err error) error {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		// No HTTP status at all: the request never got an answer
		// (refused, reset, DNS, TLS, client timeout or deadline).
		return ErrUnreachable
	}
	switch {
	case apierrors.IsNotFound(err):
		return ErrNotFound
	case apierrors.IsForbidden(err):
		return ErrForbidden
	case apierrors.IsUnauthorized(err):
		return ErrUnauthorized
	case apierrors.IsConflict(err):
		return ErrConflict
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err), apierrors.IsUnexpectedServerError(err),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ErrUnreachable
	}
	if code := status.Status().Code; code >= 500 {
		return ErrUnreachable
	}
	return ErrAPI
}
