package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/invoke"
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
// succeeded, so a retried DEL still knows what to remove.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	ph := newPhases()
	inv, err := p.setup(args)
	if err != nil {
		return err
	}
	defer inv.close()
	defer func() { ph.log(inv.log, "DEL") }()
	ph.mark("setup")
	ctx, cancel := context.WithTimeout(context.Background(), verbTimeout)
	defer cancel()
	unlock, err := inv.store.Lock(ctx)
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	}
	defer unlock()

	var errs []error
	rec, err := inv.store.Load(args.ContainerID, args.IfName)
	if err != nil {
		// A corrupt record must not block DEL forever: carry on with what
		// the configuration and the switch's ownership keys say.
		inv.log.Warn("ignoring unreadable attachment record", "error", err)
		rec = nil
	}
	ph.mark("lock")
	// The IPAM plugin is another process: release the address while the
	// switch is being torn down rather than after.
	ipamDone := make(chan error, 1)
	go func() { ipamDone <- releaseIPAM(ctx, inv) }()
	// So is the pod's annotation entry: an API round trip or two that
	// depends on nothing the switch teardown does.
	// Without a record, ADD never completed (a failed ADD takes its entry
	// back) or a DEL already ran: the API is not asked again.
	annotated, devInfo := false, inv.conf.RuntimeConfig.CNIDeviceInfoFile
	if rec != nil {
		annotated, devInfo = rec.Annotated, rec.DeviceInfoFile
	}
	kubeDone := make(chan error, 1)
	go func() { kubeDone <- removeKubeState(inv, annotated, devInfo) }()
	if err := p.teardown(ctx, inv, rec, ph); err != nil {
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
	inv.log.Info("detached")
	return nil
}

// releaseIPAM releases the attachment's address, if the network has IPAM.
func releaseIPAM(ctx context.Context, inv *invocation) error {
	t := inv.conf.IPAM.Type
	if t == "" {
		return nil
	}
	if err := invoke.DelegateDel(ctx, t, inv.args.StdinData, nil); err != nil {
		return fmt.Errorf("releasing IPAM (%s): %w", t, err)
	}
	return nil
}

// teardown removes the switch port, the config data and the socket files of
// one attachment, using its record when there is one and the configuration
// otherwise.
func (p *Plugin) teardown(ctx context.Context, inv *invocation, rec *state.Record, ph *phases) error {
	var layout *sockdir.Layout
	if rec == nil {
		if l, err := socketLayout(inv, nil); err == nil {
			layout = l
		}
	}
	var errs []error
	var eng engine.Engine
	if e, err := p.OpenEngine(ctx, inv.conf, inv.pol, inv.log); err != nil {
		errs = append(errs, fmt.Errorf("connecting to the switch: %w", err))
	} else {
		eng = e
		defer eng.Close()
	}
	ph.mark("connect")
	if err := removeAttachment(ctx, eng, attachment(inv, layout), rec); err != nil {
		errs = append(errs, err)
	}
	ph.mark("teardown")
	return errors.Join(errs...)
}

// removeAttachment detaches an attachment from the switch (unless eng is
// nil: unreachable) and removes its config data and socket files. What ADD
// recorded wins over what the caller derived; every step runs even when
// another fails. DEL, a repeated ADD and GC share it.
func removeAttachment(ctx context.Context, eng engine.Engine, att *engine.Attachment, rec *state.Record) error {
	var errs []error
	var data []byte
	cdFile := configdata.FileName(att.ContainerID, att.IfName)
	if rec != nil {
		data, att.Layout, att.Network, att.Netns = rec.EngineData, rec.Layout, rec.Network, rec.Netns
		if rec.ConfigDataFile != "" {
			cdFile = rec.ConfigDataFile
		}
	}
	if eng != nil {
		if err := eng.Detach(ctx, att, data); err != nil {
			errs = append(errs, err)
		}
	}
	if att.Layout != nil {
		if err := att.Layout.RemoveFile(cdFile); err != nil {
			errs = append(errs, err)
		}
		if err := att.Layout.Cleanup(); err != nil {
			errs = append(errs, err)
		}
	}
	if rec != nil && rec.NotesLayout != nil {
		for _, f := range rec.NotesFiles {
			if err := rec.NotesLayout.RemoveFile(f); err != nil {
				errs = append(errs, err)
			}
		}
		if err := rec.NotesLayout.Cleanup(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
