package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/sockdir"
	"github.com/userspace-cni/userspace/pkg/state"
)

// Del removes the attachment. Every teardown step runs even when another
// fails; missing records, ports, files and network namespaces are fine; IPAM
// is always released; the record goes last, and only once everything else
// succeeded, so a retried DEL still knows what to remove. Only what the
// attachment owns is removed: a file at one of its paths that another
// attachment owns (a NAD that fixes the socket name, say) is never touched.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	ph := newPhases()
	inv, ctx, end, err := p.begin(args)
	if err != nil {
		return err
	}
	defer end()
	defer func() { ph.log(inv.log, "DEL") }()
	ph.mark("setup")
	unlock, err := inv.store.LockSandbox(ctx, args.ContainerID)
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	}
	defer unlock()

	var errs []error
	rec, err := inv.store.Load(args.ContainerID, args.IfName)
	if err != nil {
		// A corrupt record must not block DEL forever: carry on with what
		// the configuration, the claims and the switch's ownership keys say.
		inv.log.Warn("ignoring unreadable attachment record", "error", err)
		rec = nil
	}
	markDeleting(inv, rec)
	ph.mark("lock")
	// The IPAM plugin is another process: release the address while the
	// switch is being torn down rather than after.
	ipamDone := make(chan error, 1)
	go func() { ipamDone <- releaseIPAM(ctx, inv) }()
	// So is the pod's annotation entry: an API round trip or two that
	// depends on nothing the switch teardown does.
	// Without a record, ADD never got as far as the API (it writes its
	// record first): the API is not asked.
	annotated, devInfo := false, inv.conf.RuntimeConfig.CNIDeviceInfoFile
	if rec != nil {
		annotated, devInfo = rec.Annotated, rec.DeviceInfoFile
	}
	kubeDone := make(chan error, 1)
	go func() { kubeDone <- p.removeKubeState(inv, annotated, devInfo) }()
	ps, err := p.teardown(ctx, inv, rec, ph)
	if err != nil {
		errs = append(errs, err)
	}
	if err := <-ipamDone; err != nil {
		errs = append(errs, err)
	}
	ph.mark("ipam")
	if err := <-kubeDone; err != nil {
		errs = append(errs, err)
	}
	ph.mark("kube")
	if len(errs) > 0 {
		return asCNIError(errors.Join(errs...), "DEL incomplete, will be retried")
	}
	if err := inv.store.Delete(args.ContainerID, args.IfName); err != nil {
		return asCNIError(err, "DEL")
	}
	if err := releaseAll(inv.log, inv.store, ps, args.ContainerID, args.IfName); err != nil {
		return asCNIError(err, "DEL")
	}
	inv.log.Info("detached")
	return nil
}

// markDeleting marks the record before the teardown's first side effect,
// so that the node agent never restores an attachment whose DEL has begun,
// even if this DEL dies half-way. A failure to write the mark is logged and
// the teardown goes on: DEL must always finish, and the agent takes the
// sandbox's lock, which this DEL holds, before it restores anything.
func markDeleting(inv *invocation, rec *state.Record) {
	if rec == nil || rec.Deleting {
		return
	}
	rec.Deleting = true
	if err := inv.store.Save(rec); err != nil {
		inv.log.Warn("could not mark the record as being deleted", "error", err)
	}
}

// recordPaths are the paths a record says its attachment uses, or, without
// a record, the paths the configuration implies (owned only if claimed).
func recordPaths(inv *invocation, rec *state.Record) paths {
	if rec != nil {
		cd := rec.ConfigDataFile
		return paths{layout: rec.Layout, cdFile: cd, notes: rec.NotesLayout}
	}
	ps, err := addPaths(inv, nil)
	if err != nil {
		// Nothing is known to be the attachment's: only the switch's
		// ownership keys can still find what it had.
		inv.log.Warn("no record, and the configuration names no usable socket path: only the switch is cleaned", "error", err)
		return paths{}
	}
	return ps
}

// teardown removes the switch port, the config data and the socket files of
// one attachment, using its record when there is one and the configuration
// otherwise, and returns the paths it worked on.
func (p *Plugin) teardown(ctx context.Context, inv *invocation, rec *state.Record, ph *phases) (paths, error) {
	ps := recordPaths(inv, rec)
	var errs []error
	var eng engine.Engine
	if e, err := p.OpenEngine(ctx, inv.conf, inv.pol, inv.log); err != nil {
		errs = append(errs, fmt.Errorf("connecting to the switch: %w", err))
	} else {
		eng = e
		defer eng.Close()
	}
	ph.mark("connect")
	own := ownership(inv.log, inv.store, ps, rec, inv.args.ContainerID, inv.args.IfName)
	if err := removeAttachment(ctx, inv.log, eng, attachment(inv, ps.layout), rec, ps, own); err != nil {
		errs = append(errs, err)
	}
	ph.mark("teardown")
	return ps, errors.Join(errs...)
}

// removeAttachment detaches an attachment from the switch (unless eng is
// nil: unreachable) and removes the files it owns. What ADD recorded wins
// over what the caller derived; every step runs even when another fails.
// DEL, a repeated ADD and GC share it.
func removeAttachment(ctx context.Context, log *slog.Logger, eng engine.Engine, att *engine.Attachment, rec *state.Record, ps paths, own owned) error {
	var errs []error
	var data []byte
	att.Layout = ps.layout
	if rec != nil {
		data, att.Network, att.Netns = rec.EngineData, rec.Network, rec.Netns
	}
	if eng != nil {
		// The engine touches the socket's path (a server-mode socket it
		// exposed) only if the attachment owns it.
		ea := *att
		if !own.socket {
			ea.Layout = nil
		}
		if err := eng.Detach(ctx, &ea, data); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeFiles(log, ps, own, att.IfName); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeFiles removes the attachment's files that it owns. A directory a
// pod replaced (with a symlink, say) counts as gone: nothing is done through
// it, and the teardown goes on.
func removeFiles(log *slog.Logger, ps paths, own owned, ifName string) error {
	var errs []error
	warned := false
	keep := func(err error) {
		if errors.Is(err, sockdir.ErrReplaced) {
			if !warned {
				log.Warn("socket directory replaced by something else: treated as gone, nothing removed through it", "error", err)
			}
			warned = true
			return
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if l := ps.layout; l != nil {
		if own.cdFile && ps.cdFile != "" {
			keep(l.RemoveFile(ps.cdFile))
		}
		if own.socket {
			keep(l.RemoveSocket())
		}
		if own.lastOfSandbox {
			keep(l.RemoveShortLink())
		}
		if own.dir {
			keep(l.RemoveDirIfEmpty())
		}
	}
	if n := ps.notes; n != nil && own.notes {
		for _, f := range []string{configdata.NotesRemoteFile(ifName), configdata.NotesAddDataFile(ifName)} {
			keep(n.RemoveFile(f))
		}
		keep(n.RemoveDirIfEmpty())
	}
	return errors.Join(errs...)
}
