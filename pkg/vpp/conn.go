// Package vpp is the VPP engine: memif and vhost-user interfaces in VPP
// bridge domains (or with the host-side address, netType "interface"),
// driven over VPP's binary API with govpp and its bundled binapi, so the
// plugin builds with no VPP installed.
package vpp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/adapter/socketclient"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/core"

	"github.com/userspace-cni/userspace/pkg/engine"
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

// quietLogger keeps govpp's logrus output off stderr: the plugin reports
// errors itself, with context, through its own log.
func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// quietOnce sets govpp's loggers, which are package globals read by every
// connection's goroutines (one abandoned at a deadline keeps running), once.
var quietOnce sync.Once

// dial connects to VPP's API socket within ctx's deadline. One attempt:
// the runtime retries a failed CNI call, and waiting for VPP to start is not
// ours to do inside one.
func dial(ctx context.Context, socket string, vppAPI adapter.VppAPI) (*conn, error) {
	quietOnce.Do(func() {
		core.SetLogger(quietLogger())
		socketclient.SetLogger(quietLogger())
	})
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if vppAPI == nil {
		client := socketclient.NewVppClient(socket)
		client.SetClientName(clientName)
		client.SetConnectTimeout(timeout)
		vppAPI = client
	}
	client := vppAPI

	type result struct {
		c   *core.Connection
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := core.Connect(client)
		done <- result{c, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		// Close the connection if it completes after all.
		go func() {
			if r := <-done; r.c != nil {
				r.c.Disconnect()
			}
		}()
		return nil, fmt.Errorf("%w: connecting to VPP at %s: %v", engine.ErrUnavailable, socket, ctx.Err())
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: connecting to VPP at %s: %v", engine.ErrUnavailable, socket, r.err)
	}
	ch, err := r.c.NewAPIChannel()
	if err != nil {
		r.c.Disconnect()
		return nil, fmt.Errorf("%w: opening a VPP API channel on %s: %v", engine.ErrUnavailable, socket, err)
	}
	ch.SetReplyTimeout(timeout)
	return &conn{c: r.c, ch: ch, trips: 1}, nil
}

func (c *conn) close() {
	c.ch.Close()
	c.c.Disconnect()
}

// checkCompatible compares exactly the messages the plugin uses with the
// table VPP sent at connect time.
func (c *conn) checkCompatible(socket string, msgs []api.Message) error {
	err := c.ch.CheckCompatiblity(msgs...)
	if err == nil {
		return nil
	}
	var cerr *api.CompatibilityError
	if errors.As(err, &cerr) {
		return fmt.Errorf("%w: VPP at %s does not speak the API this plugin was built for (VPP 23.06 to 26.10): missing or changed messages: %s",
			engine.ErrUnavailable, socket, strings.Join(cerr.IncompatibleMessages, ", "))
	}
	return fmt.Errorf("%w: checking VPP API compatibility at %s: %v", engine.ErrUnavailable, socket, err)
}
