package vppapi

import (
	"time"

	"go.fd.io/govpp/adapter"
)

// NewSocketClient exposes the socket adapter to the external tests.
func NewSocketClient(path, name string, timeout time.Duration) adapter.VppAPI {
	return newSocketClient(path, name, timeout)
}
