package kube

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/userspace-cni/userspace/pkg/podapi"
)

// classify wraps err from verb on pod namespace/name with its kind.
func classify(verb, namespace, name string, err error) error {
	return &podapi.Error{Verb: verb, Namespace: namespace, Name: name, Kind: kindOf(err), Err: err}
}

func kindOf(err error) error {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		// No HTTP status at all: the request never got an answer
		// (refused, reset, DNS, TLS, client timeout or deadline).
		return podapi.ErrUnreachable
	}
	switch {
	case apierrors.IsNotFound(err):
		return podapi.ErrNotFound
	case apierrors.IsForbidden(err):
		return podapi.ErrForbidden
	case apierrors.IsUnauthorized(err):
		return podapi.ErrUnauthorized
	case apierrors.IsConflict(err):
		return podapi.ErrConflict
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err), apierrors.IsUnexpectedServerError(err),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return podapi.ErrUnreachable
	}
	if code := status.Status().Code; code >= 500 {
		return podapi.ErrUnreachable
	}
	return podapi.ErrAPI
}
