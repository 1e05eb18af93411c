// Package ovsdb is the OVS-DPDK engine: it attaches vhost-user ports to a
// netdev bridge over the native OVSDB protocol (libovsdb's operation types
// on a small JSON-RPC connection of its own), with no ovs-vsctl. Each ADD is one transaction that creates the Interface and Port
// (and the bridge if needed) with ownership in external_ids; DEL finds the
// port by that ownership.
package ovsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/ovsdb/vswitch"
	"github.com/userspace-cni/userspace/pkg/rollback"
)

// Config configures the engine.
type Config struct {
	// Endpoint is the OVSDB socket, "unix:/path".
	Endpoint string
	// RunDir is ovs-vswitchd's run directory, where it creates the sockets of
	// dpdkvhostuser ports (under other_config:vhost-sock-dir, if set).
	RunDir string
	// ConfirmTimeout bounds how long ADD waits for ovs-vswitchd to apply a
	// new port (ofport set, Interface.error surfaced). Zero means ADD does not
	// wait for client-mode ports; server-mode ports always wait, because
	// their socket only exists once the switch has applied them.
	ConfirmTimeout time.Duration
	// CallTimeout bounds each request to ovsdb-server (DefaultCallTimeout
	// when zero), so a hung switch fails a verb in seconds rather than
	// holding it for the verb's whole budget.
	CallTimeout time.Duration
	Logger      *slog.Logger
}

// DefaultCallTimeout bounds one OVSDB request.
const DefaultCallTimeout = 4 * time.Second

// DefaultConfirmTimeout is how long a waiting ADD gives the switch.
const DefaultConfirmTimeout = 5 * time.Second

// Engine is a connection to one OVS-DPDK switch.
type Engine struct {
	cfg Config
	c   *conn
	log *slog.Logger
}

var _ engine.Engine = (*Engine)(nil)

// Connect opens the OVSDB connection. Errors wrap engine.ErrUnavailable.
// There is no handshake: the first transaction names the database, and the
// server rejects columns it lacks (the models come from schema 8.3.1, the
// oldest supported).
func Connect(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	c, err := dial(ctx, cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot connect to OVSDB at %s: %w", engine.ErrUnavailable, cfg.Endpoint, err)
	}
	return &Engine{cfg: cfg, c: c, log: cfg.Logger}, nil
}

// Close ends the connection.
func (e *Engine) Close() { _ = e.c.Close() }

// record is the engine's part of the attachment record.
type record struct {
	Bridge string `json:"bridge"`
	Port   string `json:"port"`
	Type   string `json:"type"`
	// SwitchSocket is where ovs-vswitchd created a server-mode socket.
	SwitchSocket string `json:"switchSocket,omitempty"`
	// Mounted says that socket is bind-mounted into the pod's directory
	// (it lives on another file system, so it could not be linked).
	Mounted bool `json:"mounted,omitempty"`
}

// PortName is the Port and Interface name of an attachment: the original
// plugin's socket name, unique per attachment.
func PortName(containerID, ifName string) string {
	return configdata.DefaultSocketName(netconf.IfTypeVhostUser, containerID, ifName)
}

func ifaceType(h *netconf.UserSpaceConf) string {
	if h.Vhost.Mode == netconf.VhostClient {
		return TypeVhostClient
	}
	return TypeVhostServer
}

func ownerIDs(a *engine.Attachment, socket, bridge string) map[string]string {
	ids := map[string]string{
		KeyContainerID: a.ContainerID,
		KeyIfName:      a.IfName,
		KeySocket:      socket,
		KeyBridge:      bridge,
	}
	for k, v := range map[string]string{KeyNetwork: a.Network, KeyPodNamespace: a.PodNamespace, KeyPodName: a.PodName, KeyPodUID: a.PodUID} {
		if v != "" {
			ids[k] = v
		}
	}
	return ids
}

// Attach creates the vhost-user port in one transaction.
func (e *Engine) Attach(ctx context.Context, a *engine.Attachment) (data json.RawMessage, err error) {
	var t rollback.Tx
	defer func() {
		if err == nil {
			return
		}
		// Leave nothing behind: the port is useless if the switch refused it.
		if uerr := t.Rollback(); uerr != nil {
			err = errors.Join(err, fmt.Errorf("rolling back the port: %w", uerr))
		}
	}()
	rec, err := e.attachOnce(ctx, newAdding(a), &t)
	if err != nil && (constraintViolation(err) || errors.Is(err, errBridgeGone)) {
		// Another writer created the bridge between our read and our
		// transaction (the unique name index caught it), or deleted it:
		// read again.
		rec, err = e.attachOnce(ctx, newAdding(a), &t)
	}
	if err != nil {
		return nil, err
	}
	if err := e.confirm(ctx, a, rec); err != nil {
		return nil, err
	}
	return json.Marshal(rec)
}

// adding is one attempt at adding the attachment's port, as its phases
// (read, check, replace, commit) hand it on.
type adding struct {
	a           *engine.Attachment
	bridge      string
	port        string // the Port's and the Interface's name
	typ         string
	podSocket   string
	connectPath string
	// Set by read.
	root       *vswitch.OpenvSwitch
	bridges    []*vswitch.Bridge
	oldPorts   []*vswitch.Port      // the attachment's own, from an earlier ADD
	sameName   []*vswitch.Interface // named as the new port
	sameSocket []*vswitch.Interface // on the new port's socket
}

func newAdding(a *engine.Attachment) *adding {
	return &adding{
		a:           a,
		bridge:      a.Host.Bridge.BridgeName,
		port:        PortName(a.ContainerID, a.IfName),
		typ:         ifaceType(&a.Host),
		podSocket:   a.Layout.SocketPath(),
		connectPath: a.Layout.ConnectPath(),
	}
}

// attachOnce adds the port in one transaction, after replacing the
// attachment's earlier port if any; the port's removal is t's undo step.
func (e *Engine) attachOnce(ctx context.Context, ad *adding, t *rollback.Tx) (*record, error) {
	if err := e.read(ctx, ad); err != nil {
		return nil, err
	}
	if err := ad.check(); err != nil {
		return nil, err
	}
	if err := e.replaceEarlier(ctx, ad); err != nil {
		return nil, err
	}
	if err := e.commit(ctx, ad); err != nil {
		return nil, err
	}
	rec := &record{Bridge: ad.bridge, Port: ad.port, Type: ad.typ}
	if ad.typ == TypeVhostServer {
		rec.SwitchSocket = filepath.Join(e.serverSocketDir(ad.root), ad.port)
	}
	t.Undo(func() error { return e.detach(ctx, ad.a, rec) })
	e.log.Debug("port added", "port", ad.port, "bridge", ad.bridge, "type", ad.typ, "bridgeCreated", len(ad.bridges) == 0)
	return rec, nil
}

// read reads, in one round trip, everything the checks need; whether
// ovs-vswitchd runs is asked on a side connection meanwhile, so the
// pre-flight costs no extra round trip.
func (e *Engine) read(ctx context.Context, ad *adding) error {
	alive := make(chan error, 1)
	go func() { alive <- e.requireVswitchd(ctx) }()
	reads := []ovs.Operation{
		openvSwitchSelect(),
		// Never the bridge's ports: with a thousand ports that set alone
		// costs milliseconds to serialize and decode.
		selectOp(vswitch.BridgeTable, []ovs.Condition{cond("name", ovs.ConditionEqual, ad.bridge)}, "name", "datapath_type"),
		selectOp(vswitch.PortTable, ownerWhere(ad.a.ContainerID, ad.a.IfName), "name"),
		selectOp(vswitch.InterfaceTable, []ovs.Condition{cond("name", ovs.ConditionEqual, ad.port)}, "name", "type", "external_ids"),
		selectOp(vswitch.InterfaceTable, socketWhere(ad.podSocket), "name", "external_ids"),
	}
	if ad.typ == TypeVhostClient {
		reads = append(reads, selectOp(vswitch.InterfaceTable, serverPathWhere(ad.connectPath), "name", "external_ids"))
	}
	res, err := e.transact(ctx, reads...)
	if err != nil {
		return fmt.Errorf("reading switch state: %w", err)
	}
	roots, err := decode[vswitch.OpenvSwitch](vswitch.OpenvSwitchTable, res[0])
	if err != nil {
		return err
	}
	if ad.root, err = checkDPDK(roots, ad.typ); err != nil {
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	if err := <-alive; err != nil {
		return err
	}
	return ad.decode(res[1:])
}

// decode takes the rows read after the Open_vSwitch row.
func (ad *adding) decode(res []ovs.OperationResult) (err error) {
	if ad.bridges, err = decode[vswitch.Bridge](vswitch.BridgeTable, res[0]); err != nil {
		return err
	}
	if ad.oldPorts, err = decode[vswitch.Port](vswitch.PortTable, res[1]); err != nil {
		return err
	}
	if ad.sameName, err = decode[vswitch.Interface](vswitch.InterfaceTable, res[2]); err != nil {
		return err
	}
	for _, r := range res[3:] {
		ifs, err := decode[vswitch.Interface](vswitch.InterfaceTable, r)
		if err != nil {
			return err
		}
		ad.sameSocket = append(ad.sameSocket, ifs...)
	}
	return nil
}

// check refuses a bridge that cannot take vhost-user ports, and a name or
// socket another attachment's interface uses.
func (ad *adding) check() error {
	if len(ad.bridges) == 1 && ad.bridges[0].DatapathType != "netdev" {
		return fmt.Errorf("bridge %q has datapath_type %q: vhost-user ports need a netdev (userspace) bridge", ad.bridge, ad.bridges[0].DatapathType)
	}
	mine := func(ids map[string]string) bool {
		return ids[KeyContainerID] == ad.a.ContainerID && ids[KeyIfName] == ad.a.IfName
	}
	for _, i := range ad.sameName {
		if !mine(i.ExternalIDs) {
			return fmt.Errorf("an interface named %q already exists on the switch and does not belong to this attachment", ad.port)
		}
	}
	for _, i := range ad.sameSocket {
		if !mine(i.ExternalIDs) {
			return fmt.Errorf("socket %s is already used by interface %q: two ports on one socket break each other", ad.podSocket, i.Name)
		}
	}
	return nil
}

// replaceEarlier removes the port of an earlier ADD of the same attachment
// (a retried ADD), in a transaction of its own: the old Interface only
// disappears at commit.
func (e *Engine) replaceEarlier(ctx context.Context, ad *adding) error {
	if len(ad.oldPorts) == 0 {
		return nil
	}
	if len(ad.sameName) == 1 && ad.sameName[0].Type == TypeVhostServer {
		// The earlier server-mode port's socket is still exposed in the
		// pod's directory (linked or mounted; its record is not at hand)
		// and would stop the new one from being exposed.
		if err := e.unexposeServerSocket(ad.a, &record{Type: TypeVhostServer, Mounted: true}); err != nil {
			return fmt.Errorf("replacing the attachment's earlier port: %w", err)
		}
	}
	var rm []ovs.Operation
	for _, p := range ad.oldPorts {
		rm = append(rm, removePortOp(p.UUID))
	}
	if _, err := e.transact(ctx, rm...); err != nil {
		return fmt.Errorf("replacing the attachment's earlier port: %w", err)
	}
	return nil
}

// commit adds the Interface and Port (and the bridge if missing) in one
// transaction whose wait operations make the socket's single use atomic.
func (e *Engine) commit(ctx context.Context, ad *adding) error {
	var ops []ovs.Operation
	bridgeRef := newBridge
	if len(ad.bridges) == 1 {
		bridgeRef = ad.bridges[0].UUID
	} else {
		ops = createBridgeOps(ad.bridge, newBridge, ad.root.UUID)
	}
	ops = append(ops, ad.portOps(bridgeRef)...)
	_, err := e.transact(ctx, ops...)
	if err == nil {
		return nil
	}
	var tx *txError
	if !errors.As(err, &tx) {
		// No answer: the transaction may have committed with its reply
		// lost. Find out by ownership, and take back what did commit.
		return e.undoUncertain(ad.a, ad.bridge, ad.port, fmt.Errorf("adding port %q to bridge %q: %w", ad.port, ad.bridge, err))
	}
	if failedWait(err) {
		if bridgeRef != newBridge && bridgeGone(tx) {
			return errBridgeGone
		}
		return fmt.Errorf("socket %s was taken by another interface while this port was being added", ad.podSocket)
	}
	return fmt.Errorf("adding port %q to bridge %q: %w", ad.port, ad.bridge, err)
}

// newBridge is the named UUID of a bridge created in the transaction.
const newBridge = "newbridge"

// portOps inserts the Interface and Port, owned by the attachment, into the
// bridge, and waits for each of the port's sockets to have no other user
// and for an existing bridge to be still there.
func (ad *adding) portOps(bridgeRef string) []ovs.Operation {
	a := ad.a
	iface := ovs.Row{
		"name":         ad.port,
		"type":         ad.typ,
		"external_ids": ovsMap(ownerIDs(a, ad.podSocket, ad.bridge)),
	}
	if ad.typ == TypeVhostClient {
		iface["options"] = ovsMap(map[string]string{optServerPath: ad.connectPath})
	}
	if a.MTU > 0 {
		iface["mtu_request"] = a.MTU
	}
	port := ovs.Row{
		"name":         ad.port,
		"interfaces":   uuidSet("newiface"),
		"external_ids": ovsMap(ownerIDs(a, ad.podSocket, ad.bridge)),
	}
	if a.Host.Bridge.VlanID > 0 {
		port["tag"] = a.Host.Bridge.VlanID
	}
	ops := []ovs.Operation{
		{Op: ovs.OperationInsert, Table: vswitch.InterfaceTable, Row: iface, UUIDName: "newiface"},
		{Op: ovs.OperationInsert, Table: vswitch.PortTable, Row: port, UUIDName: "newport"},
		{Op: ovs.OperationMutate, Table: vswitch.BridgeTable,
			Where:     []ovs.Condition{cond("_uuid", ovs.ConditionEqual, ovs.UUID{GoUUID: bridgeRef})},
			Mutations: []ovs.Mutation{*ovs.NewMutation("ports", ovs.MutateOperationInsert, uuidSet("newport"))}},
		// Atomic uniqueness: within this transaction, the new Interface must
		// be the only one with this socket, whoever else writes the database.
		onlyOneOp(socketWhere(ad.podSocket), ad.port),
	}
	if bridgeRef != newBridge {
		// The bridge read before must still exist: a DEL that emptied it may
		// have deleted it since, and a mutation of a deleted row changes
		// nothing, so the new Port would be garbage-collected and ADD would
		// succeed with no port.
		ops = append(ops, bridgeExistsOp(bridgeRef, ad.bridge))
	}
	if ad.typ == TypeVhostClient {
		ops = append(ops, onlyOneOp(serverPathWhere(ad.connectPath), ad.port))
	}
	return ops
}

// undoUncertain handles a write whose outcome is unknown (no reply): it
// looks for what the transaction would have created, by the attachment's
// ownership, and removes it. If the switch still does not answer, the DEL
// the runtime sends after the failed ADD finds the port the same way.
func (e *Engine) undoUncertain(a *engine.Attachment, bridge, port string, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*e.cfg.CallTimeout)
	defer cancel()
	// Type left empty: nothing was exposed in the pod's directory yet.
	if err := e.detach(ctx, a, &record{Bridge: bridge, Port: port}); err != nil {
		return fmt.Errorf("%w; whether the port was added is unknown, and it could not be checked (%v): DEL removes it by its ownership", cause, err)
	}
	e.log.Warn("the switch did not answer an ADD transaction: whatever of it committed was removed", "port", port, "error", cause)
	return cause
}

// requireVswitchd fails unless ovs-vswitchd is running on this database.
func (e *Engine) requireVswitchd(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	running, err := vswitchdRunning(ctx, e.cfg.Endpoint)
	if err != nil {
		return fmt.Errorf("%w: checking that ovs-vswitchd runs: %w", engine.ErrUnavailable, err)
	}
	if !running {
		return fmt.Errorf("%w: ovs-vswitchd is not running on %s (nobody holds its %q lock): ports added now would never be created",
			engine.ErrUnavailable, e.cfg.Endpoint, vswitchdLock)
	}
	return nil
}

// serverSocketDir is where ovs-vswitchd puts dpdkvhostuser sockets.
func (e *Engine) serverSocketDir(root *vswitch.OpenvSwitch) string {
	dir := e.cfg.RunDir
	if sub := root.OtherConfig["vhost-sock-dir"]; sub != "" {
		dir = filepath.Join(dir, sub)
	}
	return dir
}

func socketWhere(path string) []ovs.Condition {
	return []ovs.Condition{cond("external_ids", ovs.ConditionIncludes, ovsMap(map[string]string{KeySocket: path}))}
}

func serverPathWhere(path string) []ovs.Condition {
	return []ovs.Condition{cond("options", ovs.ConditionIncludes, ovsMap(map[string]string{optServerPath: path}))}
}

// onlyOneOp fails the transaction unless the Interfaces matching where are
// exactly the one named name (inserted earlier in the same transaction, which
// a wait operation sees).
func onlyOneOp(where []ovs.Condition, name string) ovs.Operation {
	timeout := 0
	return ovs.Operation{Op: ovs.OperationWait, Table: vswitch.InterfaceTable, Where: where,
		Columns: []string{"name"}, Until: string(ovs.WaitConditionEqual),
		Rows: []ovs.Row{{"name": name}}, Timeout: &timeout}
}

// removePortOp detaches a port from whichever bridge holds it; OVSDB then
// garbage-collects the Port and its Interface.
func removePortOp(portUUID string) ovs.Operation {
	return ovs.Operation{Op: ovs.OperationMutate, Table: vswitch.BridgeTable,
		Where:     []ovs.Condition{cond("ports", ovs.ConditionIncludes, uuidSet(portUUID))},
		Mutations: []ovs.Mutation{*ovs.NewMutation("ports", ovs.MutateOperationDelete, uuidSet(portUUID))}}
}

// createBridgeOps creates a netdev bridge with its local port, as
// ovs-vsctl add-br does, marked as created by the plugin. The unique name
// index makes a concurrent creation fail instead of duplicating it.
func createBridgeOps(name, ref, rootUUID string) []ovs.Operation {
	return []ovs.Operation{
		{Op: ovs.OperationInsert, Table: vswitch.InterfaceTable, UUIDName: "bridgeiface",
			Row: ovs.Row{"name": name, "type": "internal"}},
		{Op: ovs.OperationInsert, Table: vswitch.PortTable, UUIDName: "bridgeport",
			Row: ovs.Row{"name": name, "interfaces": uuidSet("bridgeiface")}},
		{Op: ovs.OperationInsert, Table: vswitch.BridgeTable, UUIDName: ref,
			Row: ovs.Row{"name": name, "datapath_type": "netdev", "ports": uuidSet("bridgeport"),
				"external_ids": ovsMap(map[string]string{KeyCreatedBy: createdByValue})}},
		{Op: ovs.OperationMutate, Table: vswitch.OpenvSwitchTable,
			Where:     []ovs.Condition{cond("_uuid", ovs.ConditionEqual, ovs.UUID{GoUUID: rootUUID})},
			Mutations: []ovs.Mutation{*ovs.NewMutation("bridges", ovs.MutateOperationInsert, uuidSet(ref))}},
	}
}
