package plugin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/sockdir"
	"github.com/userspace-cni/userspace/pkg/state"
)

type attachmentKey struct{ containerID, ifName string }

// GC removes this network's attachments that are not in
// cni.dev/valid-attachments: records, switch ports (found by ownership, even
// without a record) and their files, then lets IPAM collect its own.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	inv, err := p.setup(args)
	if err != nil {
		return err
	}
	defer inv.close()
	ctx, cancel := context.WithTimeout(context.Background(), verbTimeout)
	defer cancel()
	unlock, err := inv.store.Lock(ctx)
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	}
	defer unlock()

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
		for k, rec := range stale {
			att := &engine.Attachment{ContainerID: k.containerID, IfName: k.ifName, Network: inv.conf.Name, Host: inv.conf.Host}
			if rec == nil && sockets[k] != "" {
				// Record lost: the port remembers its socket. The directory is
				// not known to be the plugin's, so only files are removed.
				if l, err := sockdir.Plan(inv.pol, filepath.Dir(sockets[k]), false, filepath.Base(sockets[k])); err == nil {
					att.Layout = l
				}
			}
			err := removeAttachment(ctx, eng, att, rec)
			if err == nil {
				err = inv.store.Delete(k.containerID, k.ifName)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("collecting container %s interface %s: %w", k.containerID, k.ifName, err))
				continue
			}
			inv.log.Info("collected stale attachment", "staleContainerID", k.containerID, "staleIfName", k.ifName)
		}
	}
	if t := inv.conf.IPAM.Type; t != "" {
		if err := invoke.DelegateGC(ctx, t, args.StdinData, nil); err != nil {
			errs = append(errs, fmt.Errorf("IPAM GC (%s): %w", t, err))
		}
	}
	if len(errs) > 0 {
		return asCNIError(errors.Join(errs...), "GC incomplete")
	}
	return nil
}
