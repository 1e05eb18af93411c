package vpp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/interface_types"
	"go.fd.io/govpp/binapi/ip_types"
	"go.fd.io/govpp/binapi/l2"
	vppmemif "go.fd.io/govpp/binapi/memif"
	"go.fd.io/govpp/binapi/vhost_user"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/memif"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/rollback"
	"github.com/userspace-cni/userspace/pkg/vppapi"
)

// VPP return values the engine tolerates.
const (
	retvalNoSuchInterface = int32(api.INVALID_SW_IF_INDEX) // -2: already gone
	retvalBridgeExists    = int32(api.BD_ALREADY_EXISTS)   // -119
	retvalBridgeInUse     = int32(api.BD_IN_USE)           // -120: has members
	retvalNoSuchBridge    = int32(api.NO_SUCH_ENTRY)       // -6
	retvalNoSuchSocket    = int32(api.INVALID_ARGUMENT)    // -73: socket id already unregistered
)

// allInterfaces is sw_if_index ~0: every interface (binapi defaults are not
// applied, so dumps set it explicitly).
const allInterfaces = interface_types.InterfaceIndex(^uint32(0))

// Config says how to reach VPP and what the engine will be asked to do.
type Config struct {
	// Socket is VPP's API socket.
	Socket string
	// IfType is the attachments' interface type; the compatibility check
	// covers exactly the messages it needs.
	IfType string
	Logger *slog.Logger
	// CallTimeout bounds connecting and each batch of requests (default
	// DefaultCallTimeout); the verb's deadline bounds them too.
	CallTimeout time.Duration
	// Adapter replaces the API socket client (unit tests).
	Adapter adapter.VppAPI
}

// Engine drives one VPP instance over one API connection.
type Engine struct {
	cfg Config
	c   *conn
	log *slog.Logger
}

var _ engine.Engine = (*Engine)(nil)

// Messages are the API messages the engine uses for an interface type.
func Messages(ifType string) []api.Message {
	msgs := []api.Message{
		(*interfaces.SwInterfaceDump)(nil), (*interfaces.SwInterfaceDetails)(nil),
		(*interfaces.SwInterfaceSetFlags)(nil), (*interfaces.SwInterfaceSetFlagsReply)(nil),
		(*interfaces.SwInterfaceAddDelAddress)(nil), (*interfaces.SwInterfaceAddDelAddressReply)(nil),
		(*l2.BridgeDomainAddDelV2)(nil), (*l2.BridgeDomainAddDelV2Reply)(nil),
		(*l2.BridgeDomainDump)(nil), (*l2.BridgeDomainDetails)(nil),
		(*l2.SwInterfaceSetL2Bridge)(nil), (*l2.SwInterfaceSetL2BridgeReply)(nil),
	}
	switch ifType {
	case netconf.IfTypeVhostUser:
		msgs = append(msgs,
			(*vhost_user.CreateVhostUserIfV2)(nil), (*vhost_user.CreateVhostUserIfV2Reply)(nil),
			(*vhost_user.DeleteVhostUserIf)(nil), (*vhost_user.DeleteVhostUserIfReply)(nil),
			(*vhost_user.SwInterfaceVhostUserDump)(nil), (*vhost_user.SwInterfaceVhostUserDetails)(nil))
	default:
		msgs = append(msgs, memif.Messages()...)
		msgs = append(msgs, (*interfaces.SwInterfaceTagAddDel)(nil), (*interfaces.SwInterfaceTagAddDelReply)(nil))
	}
	return msgs
}

// Connect connects to VPP and checks it speaks the messages the engine
// will use.
func Connect(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Socket == "" {
		cfg.Socket = configdata.DefaultVPPAPISocket
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	c, err := dial(ctx, cfg.Socket, cfg.CallTimeout, cfg.Adapter)
	if err != nil {
		return nil, err
	}
	if err := c.checkCompatible(Messages(cfg.IfType)); err != nil {
		c.close()
		return nil, err
	}
	return &Engine{cfg: cfg, c: c, log: log}, nil
}

// Close releases the connection.
func (e *Engine) Close() {
	e.log.Debug("VPP API use", "roundTrips", e.c.trips)
	e.c.close()
}

// Settle waits, within ctx, until VPP has answered every request this
// engine sent, when one of its calls timed out (engine.Settler).
func (e *Engine) Settle(ctx context.Context) (pending bool, err error) { return e.c.settle(ctx) }

var _ engine.Settler = (*Engine)(nil)

// RoundTrips is the number of request/reply exchanges so far, connecting
// included.
func (e *Engine) RoundTrips() int { return e.c.trips }

// Status: the connection and compatibility check already proved VPP can
// take attachments.
func (e *Engine) Status(context.Context) error { return nil }

// record is what Attach returns for the attachment record. DEL does not
// trust it (VPP may have restarted and reused indexes); it is for humans
// and for CHECK's messages.
type record struct {
	Tag           string `json:"tag"`
	SwIfIndex     uint32 `json:"swIfIndex"`
	SocketID      uint32 `json:"socketId,omitempty"`
	BridgeDomain  uint32 `json:"bridgeDomain,omitempty"`
	CreatedBridge bool   `json:"createdBridge,omitempty"`
}

// bridgeDomain is the attachment's bridge domain, 0 when not bridged.
func bridgeDomain(a *engine.Attachment) uint32 {
	if a.Host.NetType != netconf.NetTypeBridge {
		return 0
	}
	bd, err := a.Host.BridgeDomainID()
	if err != nil {
		return 0
	}
	return bd
}

// Attach creates the interface in at most three round trips after
// connecting: socket registration and bridge domain together, the
// interface, then its tag, bridge membership or address, and admin up
// together (VPP handles one client's requests in order, so a batch can
// depend on its earlier members). On error, what was created is removed.
func (e *Engine) Attach(ctx context.Context, a *engine.Attachment) (data json.RawMessage, err error) {
	if a.Layout == nil {
		return nil, errors.New("attachment has no socket layout")
	}
	rec := record{Tag: OwnerTag(a.ContainerID, a.IfName), BridgeDomain: bridgeDomain(a)}
	// The rollback still runs when the verb's deadline has passed: each of
	// its requests is bounded by the call timeout, and none is sent once VPP
	// stopped answering.
	at := &attaching{a: a, rec: &rec, rctx: context.WithoutCancel(ctx)}
	defer func() {
		if err == nil {
			return
		}
		if uerr := at.t.Rollback(); uerr != nil {
			e.log.Error("VPP rollback failed", "error", uerr)
			err = fmt.Errorf("%w (rollback: %v)", err, uerr)
		}
	}()
	if err := e.createInterface(ctx, at); err != nil {
		return nil, err
	}
	if err := e.configure(ctx, at); err != nil {
		return nil, err
	}
	if a.Host.IfType == netconf.IfTypeMemif && a.Host.Memif.Role == netconf.MemifMaster ||
		a.Host.IfType == netconf.IfTypeVhostUser && a.Host.Vhost.Mode == netconf.VhostServer {
		// VPP created the listening socket as root: open it to the pod's app.
		if err := a.Layout.SetSocketPerms(a.Host.Vhost.Group); err != nil {
			return nil, fmt.Errorf("setting permissions of %s: %w", a.Layout.SocketPath(), err)
		}
	}
	e.log.Debug("VPP interface created", "tag", rec.Tag, "swIfIndex", rec.SwIfIndex, "socketId", rec.SocketID,
		"bridgeDomain", rec.BridgeDomain, "createdBridge", rec.CreatedBridge)
	return json.Marshal(rec)
}

// attaching is one Attach as its phases hand it on.
type attaching struct {
	a    *engine.Attachment
	rec  *record
	t    rollback.Tx
	rctx context.Context // for the undo steps: not cancelled with the verb
	// Set by createInterface.
	swIfIndex interface_types.InterfaceIndex
}

// createInterface creates the memif (its socket registered first) or the
// vhost-user interface, registering the undo of each.
func (e *Engine) createInterface(ctx context.Context, at *attaching) error {
	a, rec := at.a, at.rec
	switch a.Host.IfType {
	case netconf.IfTypeMemif:
		if err := e.createMemif(ctx, at); err != nil {
			return err
		}
	case netconf.IfTypeVhostUser:
		socketPath := a.Layout.ConnectPath()
		req := &vhost_user.CreateVhostUserIfV2{
			IsServer:     a.Host.Vhost.Mode == netconf.VhostServer,
			SockFilename: socketPath,
			Tag:          rec.Tag,
		}
		if err := e.c.begin(ctx, fmt.Sprintf("creating vhost-user interface %s on %s", rec.Tag, socketPath)); err != nil {
			return err
		}
		reply := &vhost_user.CreateVhostUserIfV2Reply{}
		if err := e.c.recv(e.c.ch.SendRequest(req), reply); err != nil {
			return fmt.Errorf("creating vhost-user interface %s (VPP as %s) on %s: %w", rec.Tag, a.Host.Vhost.Mode, socketPath, err)
		}
		at.swIfIndex = reply.SwIfIndex
	default:
		return fmt.Errorf("host.iftype %q is not supported by engine vpp", a.Host.IfType)
	}
	idx := at.swIfIndex
	at.t.Undo(func() error { return e.deleteInterface(at.rctx, a.Host.IfType, idx) })
	rec.SwIfIndex = uint32(idx)
	return nil
}

// createMemif registers the memif's socket, then creates the memif on it.
func (e *Engine) createMemif(ctx context.Context, at *attaching) error {
	a, rec, c := at.a, at.rec, e.c
	socketPath := a.Layout.ConnectPath()
	spec := memif.SpecFrom(a.Host.Memif, socketPath)
	create, err := memif.CreateRequest(spec, 0)
	if err != nil {
		return err
	}
	if err := c.begin(ctx, fmt.Sprintf("registering memif socket %s", socketPath)); err != nil {
		return err
	}
	sockReply := &vppmemif.MemifSocketFilenameAddDelV2Reply{}
	if err := c.recv(c.ch.SendRequest(memif.RegisterSocketRequest(socketPath)), sockReply); err != nil {
		return fmt.Errorf("registering memif socket %s with VPP: %w", socketPath, err)
	}
	rec.SocketID = sockReply.SocketID
	at.t.Undo(func() error { return e.unregisterSocket(at.rctx, sockReply.SocketID) })

	create.SocketID = rec.SocketID
	reply := &vppmemif.MemifCreateV2Reply{}
	if err := c.do(ctx, fmt.Sprintf("creating memif %s on %s", rec.Tag, socketPath), create, reply); err != nil {
		return fmt.Errorf("creating memif %s (role %s, mode %s) on %s: %w", rec.Tag, spec.Role, spec.Mode, socketPath, err)
	}
	at.swIfIndex = reply.SwIfIndex
	return nil
}

// step is one request of a batch, with what it does for error messages.
type step struct {
	what  string
	ctx   api.RequestCtx
	reply api.Message
}

// configure sends one batch: tag, bridge membership or addresses, admin up.
func (e *Engine) configure(ctx context.Context, at *attaching) error {
	a, rec, c, ch, idx := at.a, at.rec, e.c, e.c.ch, at.swIfIndex
	if err := c.begin(ctx, fmt.Sprintf("configuring interface %d (%s)", idx, rec.Tag)); err != nil {
		return err
	}
	var steps []step
	if a.Host.IfType == netconf.IfTypeMemif {
		steps = append(steps, step{"tagging the interface", ch.SendRequest(&interfaces.SwInterfaceTagAddDel{
			IsAdd: true, SwIfIndex: idx, Tag: rec.Tag,
		}), &interfaces.SwInterfaceTagAddDelReply{}})
	}
	// The bridge domain is asked for in the same batch as the membership,
	// just before it: a DEL emptying the domain meanwhile (there is no node
	// lock) cannot leave the membership to re-create it untagged.
	var bdCtx api.RequestCtx
	switch {
	case rec.BridgeDomain != 0:
		bdCtx = e.sendBridgeAdd(rec.BridgeDomain)
		steps = append(steps, step{fmt.Sprintf("adding the interface to bridge domain %d", rec.BridgeDomain),
			ch.SendRequest(&l2.SwInterfaceSetL2Bridge{
				RxSwIfIndex: idx, BdID: rec.BridgeDomain, PortType: l2.L2_API_PORT_TYPE_NORMAL, Enable: true,
			}), &l2.SwInterfaceSetL2BridgeReply{}})
	case a.Host.NetType == netconf.NetTypeInterface:
		for _, ip := range a.IPs {
			steps = append(steps, step{"setting address " + ip.String(),
				ch.SendRequest(&interfaces.SwInterfaceAddDelAddress{
					SwIfIndex: idx, IsAdd: true, Prefix: ip_types.NewAddressWithPrefix(ip),
				}), &interfaces.SwInterfaceAddDelAddressReply{}})
		}
	}
	steps = append(steps, step{"setting the interface up", ch.SendRequest(&interfaces.SwInterfaceSetFlags{
		SwIfIndex: idx, Flags: interface_types.IF_STATUS_API_FLAG_ADMIN_UP,
	}), &interfaces.SwInterfaceSetFlagsReply{}})
	return e.recvConfigure(at, steps, bdCtx)
}

// recvConfigure reads configure's answers, the bridge domain's just before
// the membership's, and stops reading once the connection is dead.
func (e *Engine) recvConfigure(at *attaching, steps []step, bdCtx api.RequestCtx) error {
	var errs []error
	for i, s := range steps {
		if i == len(steps)-2 && bdCtx != nil {
			if err := e.recvBridgeAdd(at, bdCtx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := e.c.recv(s.ctx, s.reply); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
			if e.c.dead != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// sendBridgeAdd asks for the bridge domain (nil when not bridged), in the
// batch begun.
func (e *Engine) sendBridgeAdd(bd uint32) api.RequestCtx {
	if bd == 0 {
		return nil
	}
	return e.c.ch.SendRequest(&l2.BridgeDomainAddDelV2{
		BdID: bd, Flood: true, UuFlood: true, Forward: true, Learn: true,
		BdTag: BridgeTag, IsAdd: true,
	})
}

// recvBridgeAdd reads sendBridgeAdd's answer: created (undo registered) or
// already there (someone else's, or ours from an earlier attachment). Its
// undo runs after the interface's: a domain with members stays.
func (e *Engine) recvBridgeAdd(at *attaching, req api.RequestCtx) error {
	err := e.c.recv(req, &l2.BridgeDomainAddDelV2Reply{})
	if vppapi.IsRetval(err, retvalBridgeExists) {
		return nil
	}
	// Created now; or refused, and then the membership request sent in the
	// same batch creates it untagged (VPP adds a missing domain for a new
	// member): either way it is this attachment's to remove on rollback.
	rec := at.rec
	bd := rec.BridgeDomain
	at.t.UndoLast(func() error { return e.deleteBridge(at.rctx, bd) })
	if err == nil {
		rec.CreatedBridge = true
		return nil
	}
	return fmt.Errorf("creating bridge domain %d: %w", rec.BridgeDomain, err)
}

func (e *Engine) deleteBridge(ctx context.Context, bd uint32) error {
	err := e.c.do(ctx, fmt.Sprintf("deleting bridge domain %d", bd), &l2.BridgeDomainAddDelV2{BdID: bd, IsAdd: false}, &l2.BridgeDomainAddDelV2Reply{})
	if err == nil || vppapi.IsRetval(err, retvalBridgeInUse) || vppapi.IsRetval(err, retvalNoSuchBridge) {
		return nil
	}
	return fmt.Errorf("deleting bridge domain %d: %w", bd, err)
}

func (e *Engine) unregisterSocket(ctx context.Context, id uint32) error {
	err := e.c.do(ctx, fmt.Sprintf("unregistering memif socket %d", id), memif.UnregisterSocketRequest(id), &vppmemif.MemifSocketFilenameAddDelV2Reply{})
	if err == nil || memif.IsSocketGone(err) {
		return nil
	}
	return fmt.Errorf("unregistering memif socket %d: %w", id, err)
}

func deleteRequest(ifType string, idx interface_types.InterfaceIndex) (api.Message, api.Message) {
	if ifType == netconf.IfTypeVhostUser {
		return &vhost_user.DeleteVhostUserIf{SwIfIndex: idx}, &vhost_user.DeleteVhostUserIfReply{}
	}
	return memif.DeleteRequest(idx), &vppmemif.MemifDeleteReply{}
}

func (e *Engine) deleteInterface(ctx context.Context, ifType string, idx interface_types.InterfaceIndex) error {
	req, reply := deleteRequest(ifType, idx)
	err := e.c.do(ctx, fmt.Sprintf("deleting interface %d", idx), req, reply)
	if err == nil || vppapi.IsRetval(err, retvalNoSuchInterface) {
		return nil
	}
	return fmt.Errorf("deleting interface %d: %w", idx, err)
}

// vppInterface is an interface as sw_interface_dump reports it.
type vppInterface struct {
	index   interface_types.InterfaceIndex
	name    string
	tag     string
	adminUp bool
	mac     ethernet_types.MacAddress
}

func readInterfaces(req api.MultiRequestCtx) ([]vppInterface, error) {
	var out []vppInterface
	err := vppapi.ReadDump(req, "sw_interface_dump", func(d *interfaces.SwInterfaceDetails) {
		out = append(out, vppInterface{
			index: d.SwIfIndex, name: d.InterfaceName, tag: d.Tag, mac: d.L2Address,
			adminUp: d.Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0,
		})
	})
	return out, err
}

// bridge is a bridge domain as bridge_domain_dump reports it.
type bridge struct {
	id      uint32
	tag     string
	members map[interface_types.InterfaceIndex]bool
}

// readBridge reads a bridge_domain_dump of one domain; nil when it does not
// exist.
func readBridge(req api.MultiRequestCtx) (*bridge, error) {
	var out *bridge
	err := vppapi.ReadDump(req, "bridge_domain_dump", func(d *l2.BridgeDomainDetails) {
		out = &bridge{id: d.BdID, tag: d.BdTag, members: map[interface_types.InterfaceIndex]bool{}}
		for _, m := range d.SwIfDetails {
			out.members[m.SwIfIndex] = true
		}
	})
	return out, err
}

// vhostInterface is a vhost-user interface as VPP reports it.
type vhostInterface struct {
	index    interface_types.InterfaceIndex
	socket   string
	isServer bool
}

func readVhost(req api.MultiRequestCtx) (map[interface_types.InterfaceIndex]vhostInterface, error) {
	out := map[interface_types.InterfaceIndex]vhostInterface{}
	err := vppapi.ReadDump(req, "sw_interface_vhost_user_dump", func(d *vhost_user.SwInterfaceVhostUserDetails) {
		out[d.SwIfIndex] = vhostInterface{index: d.SwIfIndex, socket: d.SockFilename, isServer: d.IsServer}
	})
	return out, err
}

// snapshot is what VPP holds that concerns the plugin, read in one round
// trip (every dump is sent before any reply is read).
type snapshot struct {
	ifs     []vppInterface
	memifs  map[interface_types.InterfaceIndex]memif.Interface
	sockets map[uint32]string
	vhosts  map[interface_types.InterfaceIndex]vhostInterface
	bridge  *bridge
}

func (e *Engine) snapshot(ctx context.Context, ifType string, bd uint32) (*snapshot, error) {
	c, ch := e.c, e.c.ch
	if err := c.begin(ctx, "reading interfaces, memifs and bridge domains"); err != nil {
		return nil, err
	}
	ifReq := c.dump(ch.SendMultiRequest(&interfaces.SwInterfaceDump{SwIfIndex: allInterfaces}))
	var memifReq, sockReq, vhostReq, bdReq api.MultiRequestCtx
	if ifType == netconf.IfTypeVhostUser {
		vhostReq = c.dump(ch.SendMultiRequest(&vhost_user.SwInterfaceVhostUserDump{SwIfIndex: allInterfaces}))
	} else {
		memifReq = c.dump(ch.SendMultiRequest(&vppmemif.MemifDump{}))
		sockReq = c.dump(ch.SendMultiRequest(&vppmemif.MemifSocketFilenameDump{}))
	}
	if bd != 0 {
		bdReq = c.dump(ch.SendMultiRequest(&l2.BridgeDomainDump{BdID: bd, SwIfIndex: allInterfaces}))
	}
	s := &snapshot{}
	var errs []error
	var err error
	if s.ifs, err = readInterfaces(ifReq); err != nil {
		errs = append(errs, err)
	}
	if memifReq != nil {
		list, err := memif.ReadInterfaces(memifReq)
		if err != nil {
			errs = append(errs, err)
		}
		if s.sockets, err = memif.ReadSockets(sockReq); err != nil {
			errs = append(errs, err)
		}
		s.memifs = map[interface_types.InterfaceIndex]memif.Interface{}
		for _, m := range list {
			m.SocketPath = s.sockets[m.SocketID]
			s.memifs[m.SwIfIndex] = m
		}
	}
	if vhostReq != nil {
		if s.vhosts, err = readVhost(vhostReq); err != nil {
			errs = append(errs, err)
		}
	}
	if bdReq != nil {
		if s.bridge, err = readBridge(bdReq); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		if c.dead != nil {
			return nil, c.dead
		}
		return nil, fmt.Errorf("reading VPP state: %w", errors.Join(errs...))
	}
	return s, nil
}

// strays are untagged memifs on the attachment's socket path.
func (s *snapshot) strays(a *engine.Attachment) []interface_types.InterfaceIndex {
	if a.Layout == nil || s.memifs == nil {
		return nil
	}
	tagged := map[interface_types.InterfaceIndex]bool{}
	for _, i := range s.ifs {
		tagged[i.index] = i.tag != ""
	}
	var out []interface_types.InterfaceIndex
	for idx, m := range s.memifs {
		if !tagged[idx] && (m.SocketPath == a.Layout.ConnectPath() || m.SocketPath == a.Layout.SocketPath()) {
			out = append(out, idx)
		}
	}
	return out
}

// find returns the attachment's interface, if VPP has it.
func (s *snapshot) find(tag string) (vppInterface, bool) {
	for _, i := range s.ifs {
		if i.tag == tag {
			return i, true
		}
	}
	return vppInterface{}, false
}

// Detach removes the attachment's interface, found by its tag, its socket
// registration, and the bridge domain if the plugin created it and nothing
// else is in it: two round trips after connecting (three when the record's
// hint no longer holds). Anything already gone
// (VPP restarted, an earlier DEL) is success. The socket file is the
// caller's to remove: VPP leaves memif sockets on disk.
func (e *Engine) Detach(ctx context.Context, a *engine.Attachment, data json.RawMessage) error {
	tag := OwnerTag(a.ContainerID, a.IfName)
	bd := bridgeDomain(a)
	var rec record
	if len(data) > 0 {
		if err := json.Unmarshal(data, &rec); err != nil {
			e.log.Warn("unreadable engine record: finding the interface by its tag", "error", err)
			rec = record{}
		}
	}
	if rec.BridgeDomain != 0 {
		// The domain ADD used, even if the configuration changed since.
		bd = rec.BridgeDomain
	}
	s, err := e.hintedSnapshot(ctx, a, bd, tag, rec)
	if err != nil {
		return err
	}
	c, ch := e.c, e.c.ch
	if err := c.begin(ctx, "deleting the attachment's interface "+tag); err != nil {
		return err
	}
	type step struct {
		what     string
		ctx      api.RequestCtx
		reply    api.Message
		tolerate []int32
	}
	var steps []step
	iface, found := s.find(tag)
	doomed := map[interface_types.InterfaceIndex]bool{}
	if found {
		doomed[iface.index] = true
		req, reply := deleteRequest(a.Host.IfType, iface.index)
		steps = append(steps, step{fmt.Sprintf("deleting interface %s (%d)", iface.name, iface.index), ch.SendRequest(req), reply, []int32{retvalNoSuchInterface}})
	}
	// A memif VPP created for an ADD that gave up before tagging it (VPP
	// answered too late): untagged, on the attachment's own socket path.
	for _, idx := range s.strays(a) {
		doomed[idx] = true
		steps = append(steps, step{fmt.Sprintf("deleting untagged memif %d on the attachment's socket", idx),
			ch.SendRequest(memif.DeleteRequest(idx)), &vppmemif.MemifDeleteReply{}, []int32{retvalNoSuchInterface}})
	}
	// Socket registrations: the interface's own, and any left on the
	// attachment's socket path by an ADD that failed half-way.
	for id := range e.ownSockets(s, a, doomed) {
		steps = append(steps, step{fmt.Sprintf("unregistering memif socket %d", id),
			ch.SendRequest(memif.UnregisterSocketRequest(id)), &vppmemif.MemifSocketFilenameAddDelV2Reply{}, []int32{retvalNoSuchInterface, retvalNoSuchSocket}})
	}
	if b := s.bridge; b != nil && b.tag == BridgeTag {
		// Asked whatever the members read above: VPP refuses (-120) while
		// any remain, and decides atomically. DELs running at once each read
		// the others as members; the last to remove its interface must still
		// see the domain go.
		steps = append(steps, step{fmt.Sprintf("deleting bridge domain %d", b.id),
			ch.SendRequest(&l2.BridgeDomainAddDelV2{BdID: b.id, IsAdd: false}), &l2.BridgeDomainAddDelV2Reply{},
			[]int32{retvalBridgeInUse, retvalNoSuchBridge}})
	}
	if len(steps) == 0 {
		c.trips-- // begun, nothing sent
		e.log.Debug("nothing of the attachment left in VPP", "tag", tag)
		return nil
	}
	var errs []error
	for _, st := range steps {
		err := c.recv(st.ctx, st.reply)
		if err == nil {
			continue
		}
		if c.dead != nil {
			errs = append(errs, fmt.Errorf("%s: %w", st.what, err))
			break
		}
		ok := false
		for _, r := range st.tolerate {
			ok = ok || vppapi.IsRetval(err, r)
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %w", st.what, err))
		}
	}
	return errors.Join(errs...)
}

// hintedSnapshot reads what Detach needs. When the record names the
// interface ADD created, only that interface is read (and the socket
// registrations, a few bytes per attachment), so DEL's cost does not grow
// with the number of interfaces. The recorded socket id is not trusted: a
// restore whose call timed out, carried out by VPP afterwards, re-creates
// the interface at the same index and tag on a new registration without
// updating the record; every registration of the attachment's socket path
// is removed with the interface. Otherwise (no record, VPP restarted, the
// index reused) everything is read and the interface is found by its tag.
func (e *Engine) hintedSnapshot(ctx context.Context, a *engine.Attachment, bd uint32, tag string, rec record) (*snapshot, error) {
	ifType := a.Host.IfType
	if rec.Tag != tag || rec.SwIfIndex == 0 || ifType == netconf.IfTypeMemif && rec.SocketID == 0 {
		return e.snapshot(ctx, ifType, bd)
	}
	c, ch := e.c, e.c.ch
	if err := c.begin(ctx, fmt.Sprintf("reading interface %d and bridge domain %d", rec.SwIfIndex, bd)); err != nil {
		return nil, err
	}
	idx := interface_types.InterfaceIndex(rec.SwIfIndex)
	ifReq := c.dump(ch.SendMultiRequest(&interfaces.SwInterfaceDump{SwIfIndex: idx}))
	var bdReq, sockReq api.MultiRequestCtx
	if bd != 0 {
		bdReq = c.dump(ch.SendMultiRequest(&l2.BridgeDomainDump{BdID: bd, SwIfIndex: allInterfaces}))
	}
	if ifType == netconf.IfTypeMemif && a.Layout != nil {
		sockReq = c.dump(ch.SendMultiRequest(&vppmemif.MemifSocketFilenameDump{}))
	}
	ifs, err := readInterfaces(ifReq)
	var b *bridge
	var berr, serr error
	if bdReq != nil {
		b, berr = readBridge(bdReq)
	}
	var sockets map[uint32]string
	if sockReq != nil {
		sockets, serr = memif.ReadSockets(sockReq)
	}
	if err != nil || berr != nil || serr != nil {
		if c.dead != nil {
			return nil, c.dead
		}
		return nil, fmt.Errorf("reading VPP state: %w", errors.Join(err, berr, serr))
	}
	if len(ifs) != 1 || ifs[0].index != idx || ifs[0].tag != tag {
		// The bridge domain just read stands: only the rest is read again.
		full, err := e.snapshot(ctx, ifType, 0)
		if err != nil {
			return nil, err
		}
		full.bridge = b
		return full, nil
	}
	s := &snapshot{ifs: ifs, bridge: b, sockets: sockets}
	if ifType == netconf.IfTypeMemif {
		// The recorded id only if VPP has it on the attachment's path
		// (ownSockets finds the others by their path): VPP hands out the
		// same sequence of ids after each restart, to other attachments.
		id := rec.SocketID
		if path, ok := sockets[id]; sockets != nil && (!ok || path != a.Layout.ConnectPath() && path != a.Layout.SocketPath()) {
			id = 0
		}
		s.memifs = map[interface_types.InterfaceIndex]memif.Interface{idx: {SwIfIndex: idx, SocketID: id}}
	}
	return s, nil
}

// ownSockets are the memif socket ids to unregister with the attachment:
// its interface's, and registrations of its socket path no other memif uses.
func (e *Engine) ownSockets(s *snapshot, a *engine.Attachment, doomed map[interface_types.InterfaceIndex]bool) map[uint32]bool {
	ids := map[uint32]bool{}
	if s.memifs == nil {
		return ids
	}
	used := map[uint32]bool{}
	for _, m := range s.memifs {
		if doomed[m.SwIfIndex] {
			if m.SocketID != 0 {
				ids[m.SocketID] = true
			}
			continue
		}
		used[m.SocketID] = true
	}
	if a.Layout != nil {
		for id, path := range s.sockets {
			if id != 0 && (path == a.Layout.ConnectPath() || path == a.Layout.SocketPath()) {
				ids[id] = true
			}
		}
	}
	for id := range ids {
		if used[id] {
			delete(ids, id)
		}
	}
	return ids
}

// Check verifies the tagged interface exists, is up, uses the attachment's
// socket with the configured role and mode, and is in its bridge domain.
func (e *Engine) Check(ctx context.Context, a *engine.Attachment, data json.RawMessage) error {
	_, _, err := e.check(ctx, a)
	return err
}

// check is Check, with what it read.
func (e *Engine) check(ctx context.Context, a *engine.Attachment) (*snapshot, vppInterface, error) {
	tag := OwnerTag(a.ContainerID, a.IfName)
	bd := bridgeDomain(a)
	s, err := e.snapshot(ctx, a.Host.IfType, bd)
	if err != nil {
		return nil, vppInterface{}, err
	}
	iface, ok := s.find(tag)
	if !ok {
		return nil, vppInterface{}, fmt.Errorf("VPP has no interface tagged %s (was VPP restarted?)", tag)
	}
	return s, iface, checkInterface(s, a, iface, bd)
}

// checkInterface checks the attachment's interface as VPP reported it.
func checkInterface(s *snapshot, a *engine.Attachment, iface vppInterface, bd uint32) error {
	if !iface.adminUp {
		return fmt.Errorf("VPP interface %s is administratively down", iface.name)
	}
	want := map[string]bool{}
	if a.Layout != nil {
		want[a.Layout.ConnectPath()], want[a.Layout.SocketPath()] = true, true
	}
	switch a.Host.IfType {
	case netconf.IfTypeMemif:
		m, ok := s.memifs[iface.index]
		if !ok {
			return fmt.Errorf("VPP interface %s is not a memif", iface.name)
		}
		if len(want) > 0 && !want[m.SocketPath] {
			return fmt.Errorf("memif %s uses socket %q, want %q", iface.name, m.SocketPath, a.Layout.ConnectPath())
		}
		if m.Role != a.Host.Memif.Role || m.Mode != a.Host.Memif.Mode {
			return fmt.Errorf("memif %s is %s/%s, want %s/%s", iface.name, m.Role, m.Mode, a.Host.Memif.Role, a.Host.Memif.Mode)
		}
	case netconf.IfTypeVhostUser:
		v, ok := s.vhosts[iface.index]
		if !ok {
			return fmt.Errorf("VPP interface %s is not a vhost-user interface", iface.name)
		}
		if len(want) > 0 && !want[v.socket] {
			return fmt.Errorf("vhost-user interface %s uses socket %q, want %q", iface.name, v.socket, a.Layout.ConnectPath())
		}
		if v.isServer != (a.Host.Vhost.Mode == netconf.VhostServer) {
			return fmt.Errorf("vhost-user interface %s has the wrong mode (server=%v)", iface.name, v.isServer)
		}
	}
	if bd != 0 {
		if s.bridge == nil {
			return fmt.Errorf("bridge domain %d does not exist", bd)
		}
		if !s.bridge.members[iface.index] {
			return fmt.Errorf("VPP interface %s is not in bridge domain %d", iface.name, bd)
		}
	}
	return nil
}

// Restore puts the attachment back after VPP lost it (a restart loses all
// configuration): whatever is left of it (an interface not as ADD made it,
// untagged memifs or socket registrations on its socket from an earlier
// attempt cut short) is removed, then it is created as ADD creates it: the
// same socket, role, mode, tag, bridge domain and addresses, up.
func (e *Engine) Restore(ctx context.Context, a *engine.Attachment, data json.RawMessage) (json.RawMessage, error) {
	if s, iface, err := e.check(ctx, a); err == nil {
		// In place, maybe re-created by an earlier attempt that VPP carried
		// out after its call timed out: the record names what VPP has.
		var old record
		if len(data) > 0 {
			if err := json.Unmarshal(data, &old); err != nil {
				// Nothing of it is kept: a bridge domain it says the
				// plugin created counts as not created, and stays at DEL.
				e.log.Warn("unreadable engine record: rewritten from what VPP has", "error", err)
				old = record{}
			}
		}
		rec := record{Tag: iface.tag, SwIfIndex: uint32(iface.index), BridgeDomain: bridgeDomain(a), CreatedBridge: old.CreatedBridge}
		if m, ok := s.memifs[iface.index]; ok {
			rec.SocketID = m.SocketID
		}
		if old == rec {
			return data, nil
		}
		return json.Marshal(rec)
	}
	if err := e.Detach(ctx, a, data); err != nil {
		return nil, fmt.Errorf("removing what is left of the attachment: %w", err)
	}
	return e.Attach(ctx, a)
}

// ListOwned lists the interfaces the plugin tagged, with their sockets. The
// network is not recorded in VPP (a tag holds 63 bytes); GC relies on the
// local records for it.
func (e *Engine) ListOwned(ctx context.Context) ([]engine.Owned, error) {
	s, err := e.snapshot(ctx, e.cfg.IfType, 0)
	if err != nil {
		return nil, err
	}
	var out []engine.Owned
	for _, i := range s.ifs {
		cid, ifName, ok := ParseOwnerTag(i.tag)
		if !ok {
			continue
		}
		o := engine.Owned{ContainerID: cid, IfName: ifName}
		if m, ok := s.memifs[i.index]; ok {
			o.SocketPath = m.SocketPath
		}
		if v, ok := s.vhosts[i.index]; ok {
			o.SocketPath = v.socket
		}
		out = append(out, o)
	}
	return out, nil
}

// Ping makes one round trip (a dump of local0): it fails once the
// connection is dead, as it is after VPP restarted or while it hangs.
func (e *Engine) Ping(ctx context.Context) error {
	c, ch := e.c, e.c.ch
	if err := c.begin(ctx, "asking for interface local0"); err != nil {
		return err
	}
	if _, err := readInterfaces(c.dump(ch.SendMultiRequest(&interfaces.SwInterfaceDump{SwIfIndex: 0}))); err != nil {
		if c.dead != nil {
			return c.dead
		}
		return err
	}
	return nil
}
