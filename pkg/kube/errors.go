package kube

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/userspace-cni/userspace/pkg/podapi"
)

// The kinds of failure and the error type are podapi's: the plugin, which
// does not link this package, classifies the same errors.
var (
	ErrNotFound     = podapi.ErrNotFound
	ErrForbidden    = podapi.ErrForbidden
	ErrUnauthorized = podapi.ErrUnauthorized
	ErrUnreachable  = podapi.ErrUnreachable
	ErrConflict     = podapi.ErrConflict
	ErrUIDMismatch  = podapi.ErrUIDMismatch
	ErrAPI          = podapi.ErrAPI
)

// Error is a failed request for one pod.
type Error = podapi.Error

// IsNotFound reports whether err means the pod does not exist.
func IsNotFound(err error) bool { return podapi.IsNotFound(err) }

// IsUnreachable reports whether the API server could not be reached (or
// was unavailable) within the bounds.
func IsUnreachable(err error) bool { return podapi.IsUnreachable(err) }

// IsConflict reports whether optimistic-concurrency retries ran out.
func IsConflict(err error) bool { return podapi.IsConflict(err) }

// IsForbidden reports whether RBAC denied a request.
func IsForbidden(err error) bool { return podapi.IsForbidden(err) }

// IsUnauthorized reports whether the credentials were rejected.
func IsUnauthorized(err error) bool { return podapi.IsUnauthorized(err) }

// IsUIDMismatch reports whether the pod found is not the one asked for.
func IsUIDMismatch(err error) bool { return podapi.IsUIDMismatch(err) }

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
