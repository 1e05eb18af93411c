// Package vpp is the VPP engine: memif and vhost-user interfaces in VPP
// bridge domains (or with the host-side address, netType "interface"),
// driven over VPP's binary API with govpp and its bundled binapi, so the
// plugin builds with no VPP installed.
package vpp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/vppapi"
)

// DefaultCallTimeout bounds each exchange with VPP (connecting, and every
// batch of requests): a hung VPP must fail a verb in seconds, not eat the
// verb's whole budget while the plugin holds the sandbox's lock.
const DefaultCallTimeout = 3 * time.Second

// clientName is how the plugin appears in VPP's "show api clients".
const clientName = "userspace-cni"

// conn is one API connection and channel. It counts the round trips it
// waits for so an operator (and the benchmark) can see what a verb cost, and
// bounds each one by the call timeout and the verb's deadline.
type conn struct {
	ch     *vppapi.Conn
	socket string
	trips  int

	callTimeout time.Duration
	// The batch being waited for: what it does, when it must end.
	what     string
	deadline time.Time
	limit    time.Duration
	// dead is set once VPP failed to answer in time: nothing more is sent
	// on this connection (a rollback could not succeed either; a later DEL
	// removes whatever VPP committed after all).
	dead error
}

// dial connects to VPP's API socket within ctx's deadline and the call
// bound. One attempt: the runtime retries a failed CNI call, and waiting for
// VPP to start is not ours to do inside one.
func dial(ctx context.Context, socket string, callTimeout time.Duration, vppAPI adapter.VppAPI) (*conn, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ch, err := vppapi.Dial(cctx, socket, clientName, vppAPI)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	return &conn{ch: ch, socket: socket, trips: 1, callTimeout: callTimeout}, nil
}

// limit is the call bound, cut to ctx's deadline.
func limit(ctx context.Context, callTimeout time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < callTimeout {
		return max(time.Until(d), 0)
	}
	return callTimeout
}

func (c *conn) close() { c.ch.Disconnect() }

// checkCompatible compares exactly the messages the plugin uses with the
// table VPP sent at connect time.
func (c *conn) checkCompatible(msgs []api.Message) error {
	if err := vppapi.CheckCompatible(c.ch, c.socket, "this plugin", msgs); err != nil {
		return fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
	}
	return nil
}

// begin starts a batch of requests, counted as one round trip, whose
// replies must all arrive by the call bound and ctx's deadline.
func (c *conn) begin(ctx context.Context, what string) error {
	if c.dead != nil {
		return c.dead
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: VPP at %s: no time left for %s: %v", engine.ErrUnavailable, c.socket, what, err)
	}
	c.trips++
	c.what, c.limit = what, limit(ctx, c.callTimeout)
	c.deadline = time.Now().Add(c.limit)
	return nil
}

// wait sets the reply timeout to what is left of the batch's time.
func (c *conn) wait() error {
	if c.dead != nil {
		return c.dead
	}
	c.ch.SetReplyTimeout(max(time.Until(c.deadline), time.Millisecond))
	return nil
}

// failed turns a reply timeout into the connection's end, an error that
// names VPP's socket and what was being done.
func (c *conn) failed(err error) error {
	if errors.Is(err, vppapi.ErrReplyTimeout) {
		c.dead = fmt.Errorf("%w: VPP at %s did not answer within %v while %s (is it hung?)", engine.ErrUnavailable, c.socket, c.limit, c.what)
		return c.dead
	}
	return err
}

// recv reads one reply of the current batch.
func (c *conn) recv(req api.RequestCtx, reply api.Message) error {
	if err := c.wait(); err != nil {
		return err
	}
	return c.failed(req.ReceiveReply(reply))
}

// do sends one request as a batch of its own and reads its reply.
func (c *conn) do(ctx context.Context, what string, req, reply api.Message) error {
	if err := c.begin(ctx, what); err != nil {
		return err
	}
	return c.recv(c.ch.SendRequest(req), reply)
}

// dump wraps a dump's request so each of its replies is bounded too.
func (c *conn) dump(req api.MultiRequestCtx) api.MultiRequestCtx {
	return &boundedDump{c: c, req: req}
}

type boundedDump struct {
	c   *conn
	req api.MultiRequestCtx
}

func (b *boundedDump) ReceiveReply(msg api.Message) (bool, error) {
	if err := b.c.wait(); err != nil {
		return false, err
	}
	last, err := b.req.ReceiveReply(msg)
	return last, b.c.failed(err)
}

// settle waits, within ctx, for VPP to answer a control ping on this
// connection after a batch timed out: VPP handles a client's requests in
// order, so the answer means every request sent before it has been carried
// out (or refused) and none is still waiting in VPP. Nothing is done
// (pending is false) on a connection that never timed out.
func (c *conn) settle(ctx context.Context) (pending bool, err error) {
	if c.dead == nil {
		return false, nil
	}
	wait := time.Minute
	if d, ok := ctx.Deadline(); ok {
		wait = max(time.Until(d), time.Millisecond)
	}
	c.trips++
	req := c.ch.SendRequest(&memclnt.ControlPing{})
	c.ch.SetReplyTimeout(wait)
	if err := req.ReceiveReply(&memclnt.ControlPingReply{}); err != nil {
		return true, fmt.Errorf("VPP at %s has not answered the requests sent before %s timed out (waited %v more): it may still carry them out: %w",
			c.socket, c.what, wait.Round(time.Millisecond), err)
	}
	return true, nil
}
