package ovsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"
	"golang.org/x/sys/unix"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/ovsdb/vswitch"
	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// confirm waits, bounded, for ovs-vswitchd to apply the new port and
// surfaces its verdict: ofport -1 or Interface.error mean it refused the port.
// The wait happens inside ovsdb-server (an OVSDB "wait" operation), so it
// costs one round trip however long the switch takes.
func (e *Engine) confirm(ctx context.Context, a *engine.Attachment, rec *record) error {
	timeout := e.cfg.ConfirmTimeout
	if rec.Type == TypeVhostServer && timeout == 0 {
		timeout = DefaultConfirmTimeout
	}
	if timeout == 0 {
		return nil
	}
	iface, err := e.waitApplied(ctx, rec.Port, timeout)
	if err != nil {
		return err
	}
	if err := portHealth(iface); err != nil {
		return err
	}
	if rec.Type == TypeVhostServer {
		return e.exposeServerSocket(a, rec)
	}
	return nil
}

// waitApplied waits, bounded, until ovs-vswitchd has applied the interface
// (its ofport is set, to a port number or -1) and returns it. The wait
// happens inside ovsdb-server (an OVSDB "wait" operation), so it costs one
// round trip however long the switch takes.
func (e *Engine) waitApplied(ctx context.Context, name string, timeout time.Duration) (*vswitch.Interface, error) {
	ms := int(timeout / time.Millisecond)
	byName := []ovs.Condition{cond("name", ovs.ConditionEqual, name)}
	wait := ovs.Operation{Op: ovs.OperationWait, Table: vswitch.InterfaceTable, Where: byName,
		Columns: []string{"ofport"}, Until: string(ovs.WaitConditionNotEqual),
		Rows: []ovs.Row{{"ofport": ovs.OvsSet{GoSet: []any{}}}}, Timeout: &ms}
	res, err := e.transactWithin(ctx, timeout+2*time.Second, wait, selectOp(vswitch.InterfaceTable, byName, "name", "ofport", "error"))
	if err != nil {
		if failedWait(err) {
			return nil, fmt.Errorf("%w: ovs-vswitchd did not apply port %q within %s (is ovs-vswitchd running?)", engine.ErrUnavailable, name, timeout)
		}
		return nil, fmt.Errorf("waiting for the switch to apply port %q: %w", name, err)
	}
	ifs, err := decode[vswitch.Interface](vswitch.InterfaceTable, res[1])
	if err != nil {
		return nil, err
	}
	if len(ifs) != 1 {
		return nil, fmt.Errorf("port %q disappeared while the switch applied it", name)
	}
	return ifs[0], nil
}

// portHealth reads the switch's verdict on an applied port.
func portHealth(i *vswitch.Interface) error {
	if i.Error != nil && *i.Error != "" {
		return fmt.Errorf("the switch rejected port %q: %s", i.Name, *i.Error)
	}
	if i.Ofport == nil {
		return fmt.Errorf("port %q is not applied by ovs-vswitchd yet (no ofport)", i.Name)
	}
	if *i.Ofport <= 0 {
		return fmt.Errorf("the switch could not open port %q (ofport %d)", i.Name, *i.Ofport)
	}
	return nil
}

// exposeServerSocket makes the socket ovs-vswitchd created in its run
// directory appear in the pod's directory: a hard link when both are on one
// file system, else a bind mount of the socket file. Never a move: a rename
// cannot cross file systems, and the switch owns its file.
func (e *Engine) exposeServerSocket(a *engine.Attachment, rec *record) error {
	src := rec.SwitchSocket
	deadline := time.Now().Add(time.Second)
	for {
		fi, err := os.Lstat(src)
		if err == nil && fi.Mode()&fs.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the switch applied port %q but its socket %s did not appear (check the policy's ovsRunDir)", rec.Port, src)
		}
		time.Sleep(5 * time.Millisecond)
	}
	dir, err := a.Layout.OpenDirFD()
	if err != nil {
		return fmt.Errorf("opening socket directory: %w", err)
	}
	defer dir.Close()
	name := a.Layout.SocketName
	err = unix.Linkat(unix.AT_FDCWD, src, int(dir.Fd()), name, 0)
	if errors.Is(err, unix.EXDEV) {
		err = bindSocket(src, dir, name)
		rec.Mounted = err == nil
	}
	if err != nil {
		return fmt.Errorf("exposing switch socket %s as %s: %w", src, a.Layout.SocketPath(), err)
	}
	return a.Layout.SetSocketPerms(a.Host.Vhost.Group)
}

// bindSocket bind-mounts src over a placeholder file in dir. The target is
// reached through the directory descriptor, so a symlink planted in the
// shared directory cannot redirect the mount.
func bindSocket(src string, dir *os.File, name string) error {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("creating mount point: %w", err)
	}
	_ = unix.Close(fd)
	target := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), name)
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		_ = unix.Unlinkat(int(dir.Fd()), name, 0)
		return fmt.Errorf("bind-mounting: %w", err)
	}
	return nil
}

// unexposeServerSocket undoes exposeServerSocket; what is already gone is
// not an error.
func (e *Engine) unexposeServerSocket(a *engine.Attachment, rec *record) error {
	if rec.Type != TypeVhostServer || a.Layout == nil {
		return nil
	}
	dir, err := a.Layout.OpenDirFD()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if errors.Is(err, sockdir.ErrReplaced) {
		// A pod replaced the directory: nothing is reachable through it.
		e.log.Warn("socket directory replaced: the switch socket exposed in it is left alone", "error", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening socket directory: %w", err)
	}
	defer dir.Close()
	name := a.Layout.SocketName
	if rec.Mounted {
		target := fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), name)
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmounting switch socket at %s: %w", a.Layout.SocketPath(), err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("looking at %s: %w", a.Layout.SocketPath(), err)
	}
	if id := a.Layout.Socket; id != nil && (uint64(st.Dev) != id.Dev || st.Ino != id.Ino) {
		// Not the socket this attachment exposed: a pod's file now.
		e.log.Warn("the exposed switch socket was replaced: the file now at its path is left alone", "path", a.Layout.SocketPath())
		return nil
	}
	// Only the link or the (now unmounted, empty) mount point is ours.
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK && (!rec.Mounted || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0) {
		e.log.Warn("the file at the exposed switch socket's path is not the socket or its mount point: left alone",
			"path", a.Layout.SocketPath(), "mode", fmt.Sprintf("%#o", st.Mode))
		return nil
	}
	if err := unix.Unlinkat(int(dir.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing %s: %w", a.Layout.SocketPath(), err)
	}
	return nil
}

// checkApplyTimeout bounds how long CHECK waits for a port the switch has
// not applied yet.
const checkApplyTimeout = 2 * time.Second

// loadRecord decodes the engine's record, falling back to what the
// configuration implies when the record is lost.
func (e *Engine) loadRecord(a *engine.Attachment, data json.RawMessage) *record {
	rec := &record{}
	if len(data) > 0 {
		if err := json.Unmarshal(data, rec); err != nil {
			e.log.Warn("unreadable engine record: using what the configuration implies", "error", err)
			rec = &record{}
		}
	}
	if rec.Bridge == "" {
		rec.Bridge = a.Host.Bridge.BridgeName
	}
	if rec.Port == "" {
		rec.Port = PortName(a.ContainerID, a.IfName)
	}
	if rec.Type == "" {
		rec.Type = ifaceType(&a.Host)
	}
	return rec
}

// Detach removes the attachment's port, found by ownership. It does not
// wait for ovs-vswitchd's vhost teardown (tens of milliseconds inside the
// switch): nothing the plugin does next depends on it.
func (e *Engine) Detach(ctx context.Context, a *engine.Attachment, data json.RawMessage) error {
	return e.detach(ctx, a, e.loadRecord(a, data))
}

func (e *Engine) detach(ctx context.Context, a *engine.Attachment, rec *record) error {
	var errs []error
	if err := e.unexposeServerSocket(a, rec); err != nil {
		errs = append(errs, err)
	}
	res, err := e.transact(ctx,
		selectOp(vswitch.PortTable, ownerWhere(a.ContainerID, a.IfName)),
		selectOp(vswitch.BridgeTable, []ovs.Condition{cond("name", ovs.ConditionEqual, rec.Bridge)}, "external_ids"),
		selectOp(vswitch.PortTable, []ovs.Condition{cond("name", ovs.ConditionEqual, rec.Bridge)}),
	)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("reading switch state: %w", err))...)
	}
	ports, err := decode[vswitch.Port](vswitch.PortTable, res[0])
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	bridges, err := decode[vswitch.Bridge](vswitch.BridgeTable, res[1])
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	locals, err := decode[vswitch.Port](vswitch.PortTable, res[2])
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	var removeOps []ovs.Operation
	for _, p := range ports {
		removeOps = append(removeOps, removePortOp(p.UUID))
	}
	var bridgeOps []ovs.Operation
	if len(bridges) == 1 && bridges[0].ExternalIDs[KeyCreatedBy] == createdByValue {
		// The plugin made this bridge: remove it too if, once our port is
		// gone, only its local port is left. The wait sees the transaction's
		// own removal; if other ports remain it fails the transaction. Even
		// when our port is already gone (removed out of band, or a retried
		// DEL) an emptied bridge goes.
		bridgeOps = emptyBridgeOps(bridges[0].UUID, locals)
	}
	ops := append(append([]ovs.Operation{}, removeOps...), bridgeOps...)
	if len(ops) == 0 {
		return errors.Join(errs...) // already gone
	}
	_, err = e.transact(ctx, ops...)
	if err != nil && failedWait(err) && len(bridgeOps) > 0 {
		// Other ports were still on the bridge. Remove ours alone, then ask
		// once more whether the bridge is now empty: DELs running at once
		// each see the others' ports in their first transaction, and the
		// last one to remove its port must still find the bridge empty.
		err = nil
		if len(removeOps) > 0 {
			_, err = e.transact(ctx, removeOps...)
		}
		if err == nil {
			if _, berr := e.transact(ctx, bridgeOps...); berr != nil && !failedWait(berr) {
				err = fmt.Errorf("deleting emptied bridge %q: %w", rec.Bridge, berr)
			}
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("removing port %q: %w", rec.Port, err))
	}
	return errors.Join(errs...)
}

// emptyBridgeOps delete a bridge provided that its ports are exactly its
// local port (or none): the bridge's port set is compared inside ovsdb-server
// instead of being read, which with many ports is costly.
func emptyBridgeOps(bridgeUUID string, locals []*vswitch.Port) []ovs.Operation {
	var local []string
	for _, l := range locals {
		local = append(local, l.UUID)
	}
	timeout := 0
	byUUID := []ovs.Condition{cond("_uuid", ovs.ConditionEqual, ovs.UUID{GoUUID: bridgeUUID})}
	return []ovs.Operation{
		{Op: ovs.OperationWait, Table: vswitch.BridgeTable, Where: byUUID, Columns: []string{"ports"},
			Until: string(ovs.WaitConditionEqual), Rows: []ovs.Row{{"ports": uuidSet(local...)}}, Timeout: &timeout},
		{Op: ovs.OperationMutate, Table: vswitch.OpenvSwitchTable,
			Where:     []ovs.Condition{cond("bridges", ovs.ConditionIncludes, uuidSet(bridgeUUID))},
			Mutations: []ovs.Mutation{*ovs.NewMutation("bridges", ovs.MutateOperationDelete, uuidSet(bridgeUUID))}},
	}
}

// Check verifies the port exists with the right type, socket and bridge and
// that the switch applied it (ofport > 0, no error).
func (e *Engine) Check(ctx context.Context, a *engine.Attachment, data json.RawMessage) error {
	rec := e.loadRecord(a, data)
	// A port is only working while ovs-vswitchd runs: the database keeps
	// the port (and its last ofport) after the switch died. Asked on a side
	// connection while the reads go out, as ADD and STATUS do.
	alive := make(chan error, 1)
	go func() { alive <- e.requireVswitchd(ctx) }()
	if err := e.check(ctx, a, rec, true); err != nil {
		return err
	}
	return <-alive
}

// check verifies the port; exposed says whether a server-mode socket must
// also be exposed in the pod's directory.
func (e *Engine) check(ctx context.Context, a *engine.Attachment, rec *record, exposed bool) error {
	res, err := e.transact(ctx,
		openvSwitchSelect(),
		selectOp(vswitch.PortTable, ownerWhere(a.ContainerID, a.IfName), "name", "interfaces", "tag"),
		selectOp(vswitch.InterfaceTable, []ovs.Condition{cond("name", ovs.ConditionEqual, rec.Port)}, "name", "type", "options", "ofport", "error", "mtu_request"),
	)
	if err != nil {
		return fmt.Errorf("reading switch state: %w", err)
	}
	roots, err := decode[vswitch.OpenvSwitch](vswitch.OpenvSwitchTable, res[0])
	if err != nil {
		return err
	}
	if _, err := checkDPDK(roots, ""); err != nil {
		return err
	}
	ports, err := decode[vswitch.Port](vswitch.PortTable, res[1])
	if err != nil {
		return err
	}
	if len(ports) != 1 {
		return fmt.Errorf("no port of container %s interface %s on the switch", a.ContainerID, a.IfName)
	}
	port := ports[0]
	// Membership is asked of ovsdb-server rather than read from the bridge's
	// whole port set.
	res2, err := e.transact(ctx, selectOp(vswitch.BridgeTable, []ovs.Condition{
		cond("name", ovs.ConditionEqual, rec.Bridge), cond("ports", ovs.ConditionIncludes, uuidSet(port.UUID))}))
	if err != nil {
		return fmt.Errorf("reading switch state: %w", err)
	}
	if len(res2[0].Rows) != 1 {
		return fmt.Errorf("port %q is not on bridge %q", port.Name, rec.Bridge)
	}
	ifs, err := decode[vswitch.Interface](vswitch.InterfaceTable, res[2])
	if err != nil {
		return err
	}
	if len(ifs) != 1 || !slices.Contains(port.Interfaces, ifs[0].UUID) {
		return fmt.Errorf("port %q has no interface %q", port.Name, rec.Port)
	}
	iface := ifs[0]
	if want := ifaceType(&a.Host); iface.Type != want {
		return fmt.Errorf("interface %q has type %q, want %q", iface.Name, iface.Type, want)
	}
	if iface.Type == TypeVhostClient {
		if got, want := iface.Options[optServerPath], a.Layout.ConnectPath(); got != want {
			return fmt.Errorf("interface %q connects to %q, want %q", iface.Name, got, want)
		}
	} else if exposed {
		if err := e.checkExposed(a, rec); err != nil {
			return fmt.Errorf("the socket of interface %q: %w", iface.Name, err)
		}
	}
	wantTag := a.Host.Bridge.VlanID
	if gotTag := port.Tag; (wantTag == 0) != (gotTag == nil) || (gotTag != nil && *gotTag != wantTag) {
		return fmt.Errorf("port %q has VLAN tag %v, want %d", port.Name, deref(gotTag), wantTag)
	}
	if a.MTU > 0 && (iface.MTURequest == nil || *iface.MTURequest != a.MTU) {
		return fmt.Errorf("interface %q has mtu_request %v, want %d", iface.Name, deref(iface.MTURequest), a.MTU)
	}
	if iface.Ofport == nil {
		// ADD does not wait for the switch; give a fresh port a moment.
		if iface, err = e.waitApplied(ctx, iface.Name, checkApplyTimeout); err != nil {
			return err
		}
	}
	return portHealth(iface)
}

// checkExposed verifies that the socket in the pod's directory is the one
// ovs-vswitchd listens on. After ovs-vswitchd restarts, the name in the
// pod's directory still links (or is mounted over) the old switch's socket,
// which refuses connections, while the new switch created another file.
func (e *Engine) checkExposed(a *engine.Attachment, rec *record) error {
	dir, err := a.Layout.OpenDirFD()
	if err != nil {
		return fmt.Errorf("is missing from %s: the directory: %w", a.Layout.SocketPath(), err)
	}
	defer dir.Close()
	var pod unix.Stat_t
	// Followed only as far as a bind mount: the name itself is never a
	// symlink the plugin made, and a planted one is refused.
	if err := unix.Fstatat(int(dir.Fd()), a.Layout.SocketName, &pod, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("is missing from %s: %w", a.Layout.SocketPath(), err)
	}
	if rec.SwitchSocket == "" {
		return nil // a record of an older plugin: existence is all it knows
	}
	var sw unix.Stat_t
	if err := unix.Stat(rec.SwitchSocket, &sw); err != nil {
		return fmt.Errorf("the switch's socket %s is missing (did ovs-vswitchd restart?): %w", rec.SwitchSocket, err)
	}
	if pod.Dev != sw.Dev || pod.Ino != sw.Ino {
		return fmt.Errorf("%s is not the one ovs-vswitchd listens on (%s): the switch restarted since it was exposed",
			a.Layout.SocketPath(), rec.SwitchSocket)
	}
	return nil
}

// Restore puts the attachment back after the switch lost it. When only
// ovs-vswitchd restarted (the database kept the port), a server-mode port's
// new socket is exposed in place of the old one; otherwise (a fresh
// database, or a port not as ADD made it) the port, and its bridge if
// missing, are added again as ADD adds them, with the same ownership.
func (e *Engine) Restore(ctx context.Context, a *engine.Attachment, data json.RawMessage) (json.RawMessage, error) {
	if e.Check(ctx, a, data) == nil {
		return data, nil
	}
	rec := e.loadRecord(a, data)
	if rec.Type == TypeVhostServer {
		// A port whose socket is not re-created yet would be exposed with
		// the dead switch's socket.
		if err := e.requireVswitchd(ctx); err != nil {
			return nil, err
		}
		if rec.SwitchSocket != "" && e.check(ctx, a, rec, false) == nil {
			// The database kept the port and check waited for the switch to
			// apply it. If the switch's socket is still the file exposed at
			// ADD, ovs-vswitchd has not re-created it yet: try again later.
			if old := a.Layout.Socket; old != nil && sameFile(rec.SwitchSocket, *old) && e.checkExposed(a, rec) == nil {
				return nil, fmt.Errorf("%w: ovs-vswitchd has not re-created socket %s yet", engine.ErrUnavailable, rec.SwitchSocket)
			}
			// The database's ofport is the last run's until the restarted
			// switch has gone over its ports: no socket yet means it has
			// not, and the pod's name is left as it is until it has.
			if fi, err := os.Lstat(rec.SwitchSocket); err != nil || fi.Mode()&fs.ModeSocket == 0 {
				return nil, fmt.Errorf("%w: ovs-vswitchd has not created socket %s yet", engine.ErrUnavailable, rec.SwitchSocket)
			}
			if err := e.unexposeServerSocket(a, rec); err != nil {
				return nil, err
			}
			rec.Mounted = false
			if err := e.exposeServerSocket(a, rec); err != nil {
				return nil, err
			}
			return json.Marshal(rec)
		}
		// A switch killed (not stopped) leaves its socket file behind, and
		// the restarted one cannot bind that name ("Address already in
		// use"): the file exposed at ADD, still there, is the dead one's.
		// Only if nothing listens on it: once the dead file was removed
		// (and the pod's link to it gone), the restarted switch's socket
		// may have been given the same inode number, and is live.
		if old := a.Layout.Socket; old != nil && rec.SwitchSocket != "" && sameFile(rec.SwitchSocket, *old) {
			if _, err := sockdir.RemoveDead(rec.SwitchSocket); err != nil {
				return nil, err
			}
		}
		// The name still holds the old switch's socket (removed only if it
		// is the file the attachment exposed): it would stop the new one
		// from being exposed.
		if err := e.unexposeServerSocket(a, rec); err != nil {
			return nil, err
		}
	}
	return e.Attach(ctx, a)
}

// sameFile reports whether path is the file id names.
func sameFile(path string, id sockdir.FileID) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && uint64(st.Dev) == id.Dev && st.Ino == id.Ino
}

func deref(p *int) any {
	if p == nil {
		return "none"
	}
	return *p
}

// ListOwned lists every port the plugin created on the switch.
func (e *Engine) ListOwned(ctx context.Context) ([]engine.Owned, error) {
	res, err := e.transact(ctx, selectOp(vswitch.PortTable, nil, "external_ids"))
	if err != nil {
		return nil, fmt.Errorf("listing ports: %w", err)
	}
	ports, err := decode[vswitch.Port](vswitch.PortTable, res[0])
	if err != nil {
		return nil, err
	}
	var out []engine.Owned
	for _, p := range ports {
		cid, ifName := p.ExternalIDs[KeyContainerID], p.ExternalIDs[KeyIfName]
		if cid != "" && ifName != "" {
			out = append(out, engine.Owned{ContainerID: cid, IfName: ifName,
				Network: p.ExternalIDs[KeyNetwork], SocketPath: p.ExternalIDs[KeySocket]})
		}
	}
	return out, nil
}

// Status reports whether the switch is reachable (Connect succeeded) and
// can create vhost-user ports.
func (e *Engine) Status(ctx context.Context) error {
	res, err := e.transact(ctx, openvSwitchSelect())
	if err != nil {
		if errors.Is(err, engine.ErrUnavailable) {
			return err
		}
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	roots, err := decode[vswitch.OpenvSwitch](vswitch.OpenvSwitchTable, res[0])
	if err != nil {
		return err
	}
	if _, err := checkDPDK(roots, TypeVhostClient); err != nil {
		return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	return e.requireVswitchd(ctx)
}
