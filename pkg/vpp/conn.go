// Package vpp is the VPP engine: memif and vhost-user interfaces in VPP
// bridge domains (or with the host-side address, netType "interface"),
// driven over VPP's binary API with govpp and its bundled binapi, so the
// plugin builds with no VPP installed.
package vpp

import (
	"context"
	"fmt"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/core"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/vppapi"
)

// DefaultAPISocket is where VPP listens for API clients by default.
const DefaultAPISocket = "/run/vpp/api.sock"

// clientName is how the plugin appears in VPP's "show api clients".
const clientName = "userspace-cni"

// conn is one API connection and channel, counting the round trips it
// waits for so an operator (and the benchmark) can see what a verb cost.
type conn struct {
	c     *core.Connection
	ch    api.Channel
	trips int
}

// dial connects to VPP's API socket within ctx's deadline. One attempt:
// the runtime retries a failed CNI call, and waiting for VPP to start is not
// ours to do inside one.
func dial(ctx context.Context, socket string, vppAPI adapter.VppAPI) (*conn, error) {
	c, ch, err := vppapi.Dial(ctx, socket, clientName, vppAPI)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
	}
	return &conn{c: c, ch: ch, trips: 1}, nil
}

func (c *conn) close() {
	c.ch.Close()
	c.c.Disconnect()
}

// checkCompatible compares exactly the messages the plugin uses with the
// table VPP sent at connect time.
func (c *conn) checkCompatible(socket string, msgs []api.Message) error {
	if err := vppapi.CheckCompatible(c.ch, socket, "this plugin", msgs); err != nil {
		return fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
	}
	return nil
}
