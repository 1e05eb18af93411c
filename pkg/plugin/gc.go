package plugin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/sockdir"
	"github.com/userspace-cni/userspace/pkg/state"
)

type attachmentKey struct{ containerID, ifName string }

// GC removes this network's attachments that are not in
// cni.dev/valid-attachments: records, switch ports (found by ownership, even
// without a record), the files they own and their addresses (an IPAM DEL for
// each, as DEL does: host-local has no GC of its own), then lets IPAM
// collect anything else. An attachment a verb is working on right now is
// left for the next GC.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	inv, ctx, end, err := p.begin(args)
	if err != nil {
		return err
	}
	defer end()

	valid := map[attachmentKey]bool{}
	for _, a := range inv.conf.ValidAttachments {
		valid[attachmentKey{a.ContainerID, a.IfName}] = true
	}
	var errs []error
	records, err := inv.store.List()
	if err != nil {
		errs = append(errs, err)
	}
	stale := map[attachmentKey]*state.Record{}
	recorded := map[attachmentKey]bool{}
	for _, r := range records {
		k := attachmentKey{r.ContainerID, r.IfName}
		recorded[k] = true
		if r.Network == inv.conf.Name && r.Engine == inv.conf.Host.Engine && !valid[k] {
			stale[k] = r
		}
	}

	eng, err := p.OpenEngine(ctx, inv.conf, inv.pol, inv.log)
	if err != nil {
		// Without the switch nothing can be collected safely: records stay
		// until their ports can be removed too.
		errs = append(errs, fmt.Errorf("connecting to the switch: %w", err))
	} else {
		defer eng.Close()
		owned, err := eng.ListOwned(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		sockets := map[attachmentKey]string{}
		for _, o := range owned {
			k := attachmentKey{o.ContainerID, o.IfName}
			// A switch that cannot say which network an interface is in (VPP)
			// leaves it to the records: without one, it is an orphan of a
			// lost record; with one, that record's network decides.
			mine := o.Network == inv.conf.Name || o.Network == "" && !recorded[k]
			if mine && !valid[k] {
				if _, ok := stale[k]; !ok {
					stale[k] = nil
					sockets[k] = o.SocketPath
				}
			}
		}
		// In a fixed order, so that an incomplete GC's error lists the
		// attachments alike on every run.
		keys := slices.SortedFunc(maps.Keys(stale), func(a, b attachmentKey) int {
			return cmp.Or(cmp.Compare(a.containerID, b.containerID), cmp.Compare(a.ifName, b.ifName))
		})
		for _, k := range keys {
			rec := stale[k]
			err := p.collect(ctx, inv, eng, k, rec, sockets[k])
			if err != nil {
				errs = append(errs, fmt.Errorf("collecting container %s interface %s: %w", k.containerID, k.ifName, err))
			}
		}
	}
	if c := inv.ipam("GC"); c != nil {
		if err := c.run(ctx); err != nil {
			errs = append(errs, fmt.Errorf("IPAM GC (%s): %w", inv.conf.IPAM.Type, err))
		}
	}
	if len(errs) > 0 {
		return asCNIError(errors.Join(errs...), "GC incomplete")
	}
	return nil
}

// collect removes one stale attachment under its sandbox's lock, as DEL
// would. A sandbox a verb holds is skipped: it is not idle, so not stale yet.
func (p *Plugin) collect(ctx context.Context, inv *invocation, eng engine.Engine, k attachmentKey, rec *state.Record, socket string) error {
	unlock, ok, err := inv.store.TryLockSandbox(k.containerID)
	if err != nil {
		return err
	}
	if !ok {
		inv.log.Info("stale attachment busy, left for the next GC", "staleContainerID", k.containerID, "staleIfName", k.ifName)
		return nil
	}
	defer unlock()
	if rec != nil {
		// Read again under the lock: a DEL may have finished meanwhile.
		if rec, err = inv.store.Load(k.containerID, k.ifName); err != nil || rec == nil {
			return err
		}
	}
	markDeleting(inv, rec)
	var ps paths
	switch {
	case rec != nil:
		ps = paths{layout: rec.Layout, cdFile: rec.ConfigDataFile, notes: rec.NotesLayout}
	case socket != "":
		// Record lost: the port remembers its socket. The directory is not
		// known to be the plugin's; its files go only if the attachment
		// claimed them.
		l, err := sockdir.Plan(inv.pol, filepath.Dir(socket), false, filepath.Base(socket))
		if err != nil {
			inv.log.Warn("the switch's socket path for a stale attachment is not one the policy allows: its files are left",
				"staleContainerID", k.containerID, "staleIfName", k.ifName, "error", err)
		} else {
			ps = paths{layout: l, cdFile: configdata.FileName(k.containerID, k.ifName)}
		}
	}
	att := &engine.Attachment{ContainerID: k.containerID, IfName: k.ifName, Network: inv.conf.Name, Host: inv.conf.Host}
	own := ownership(inv.log, inv.store, ps, rec, k.containerID, k.ifName)
	if rec == nil && ps.layout != nil {
		// The switch, not a configuration, says where this attachment's
		// socket is (the plugin wrote it there at ADD): its files go unless
		// another attachment claims them.
		own.socket = !claimedByOther(inv.log, inv.store, ps.layout.SocketPath(), k)
		own.cdFile = !claimedByOther(inv.log, inv.store, filepath.Join(ps.layout.Dir, ps.cdFile), k)
	}
	errs := []error{removeAttachment(ctx, inv.log, eng, att, rec, ps, own)}
	if inv.conf.IPAM.Type != "" {
		c := &ipamCall{inv: inv, command: "DEL", containerID: k.containerID, ifName: k.ifName}
		if err := c.run(ctx); err != nil {
			errs = append(errs, fmt.Errorf("releasing IPAM (%s): %w", inv.conf.IPAM.Type, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := inv.store.Delete(k.containerID, k.ifName); err != nil {
		return err
	}
	if err := releaseAll(inv.log, inv.store, ps, k.containerID, k.ifName); err != nil {
		return err
	}
	inv.log.Info("collected stale attachment", "staleContainerID", k.containerID, "staleIfName", k.ifName)
	return nil
}

// claimedByOther reports whether another attachment claims path (an
// unreadable claim counts as another's).
func claimedByOther(log *slog.Logger, store *state.Store, path string, k attachmentKey) bool {
	c, err := store.Owner(path)
	if err != nil {
		log.Warn("cannot read the claim on a stale attachment's path: it is left as another's",
			"staleContainerID", k.containerID, "staleIfName", k.ifName, "path", path, "error", err)
		return true
	}
	return c != nil && (c.ContainerID != k.containerID || c.IfName != k.ifName)
}
