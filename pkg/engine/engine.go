// Package engine is the small interface every switch engine (OVS-DPDK, VPP)
// satisfies, so the CNI verbs never branch on the engine beyond choosing it.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net"

	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// Attachment is one interface of one pod on the switch.
type Attachment struct {
	ContainerID  string
	IfName       string
	Netns        string
	Network      string
	PodNamespace string
	PodName      string
	PodUID       string
	// Host is the validated host side of the configuration.
	Host netconf.UserSpaceConf
	// Layout is where the socket lives on the host.
	Layout *sockdir.Layout
	MTU    int
	// IPs are the IPAM addresses. Engines that give the host side an
	// address (VPP with netType "interface") use them.
	IPs []net.IPNet
}

// Owned identifies an attachment the engine found on the switch.
type Owned struct {
	ContainerID string
	IfName      string
	Network     string
	// SocketPath is the pod-side socket the switch recorded, if any.
	SocketPath string
}

// Engine drives one switch.
type Engine interface {
	// Attach creates the attachment's interface and returns the engine's
	// record of what it created. On error it leaves nothing behind.
	Attach(ctx context.Context, a *Attachment) (json.RawMessage, error)
	// Detach removes the attachment. data is what Attach returned, or nil
	// when the record is lost; an attachment already gone is not an error.
	Detach(ctx context.Context, a *Attachment, data json.RawMessage) error
	// Check verifies the attachment is in place and working.
	Check(ctx context.Context, a *Attachment, data json.RawMessage) error
	// Restore puts back an attachment the switch lost (it restarted, or
	// lost its database), as Attach made it: the same socket, ownership and
	// settings, replacing whatever part of it the switch still has. Running
	// it again changes nothing more. It returns the engine's new record.
	Restore(ctx context.Context, a *Attachment, data json.RawMessage) (json.RawMessage, error)
	// ListOwned lists the attachments this plugin created on the switch.
	ListOwned(ctx context.Context) ([]Owned, error)
	// Status reports whether the switch can take attachments.
	Status(ctx context.Context) error
	// Close releases the connection to the switch.
	Close()
}

// ErrUnavailable marks errors meaning the switch cannot be reached or cannot
// serve attachments (CNI error 50 in STATUS).
var ErrUnavailable = errors.New("switch unavailable")

// Settler is an engine whose requests the switch may still carry out after
// a call of the engine timed out (VPP answers each client's requests in
// order, late when loaded). Settle waits, within ctx, until the switch has
// answered everything sent so far: once it returns nil, nothing this engine
// sent can change the switch any more, so what the switch now shows is final.
// pending is false when no call had timed out (nothing was waited for).
type Settler interface {
	Settle(ctx context.Context) (pending bool, err error)
}
