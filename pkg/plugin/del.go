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
	if err := p.teardown(ctx, inv, rec, ph); err != nil {
		errs = append(errs, err)
	}
	if err := releaseIPAM(ctx, inv); err != nil {
		errs = append(errs, err)
	}
	ph.mark("ipam")
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
	var errs []error
	layout, cdFile := (*sockdir.Layout)(nil), configdata.FileName(inv.args.ContainerID, inv.args.IfName)
	var engineData []byte
	if rec != nil {
		layout, engineData = rec.Layout, rec.EngineData
		if rec.ConfigDataFile != "" {
			cdFile = rec.ConfigDataFile
		}
	} else if l, err := socketLayout(inv); err == nil {
		layout = l
	}

	att := attachment(inv, layout)
	if rec != nil {
		att.Network, att.Netns = rec.Network, rec.Netns
	}
	eng, err := p.OpenEngine(ctx, inv.conf, inv.pol, inv.log)
	ph.mark("connect")
	if err != nil {
		errs = append(errs, fmt.Errorf("connecting to the switch: %w", err))
	} else {
		if err := eng.Detach(ctx, att, engineData); err != nil {
			errs = append(errs, err)
		}
		eng.Close()
		ph.mark("detach")
	}
	if layout != nil {
		if err := layout.RemoveFile(cdFile); err != nil {
			errs = append(errs, err)
		}
		if err := layout.Cleanup(); err != nil {
			errs = append(errs, err)
		}
		ph.mark("files")
	}
	return errors.Join(errs...)
}

// detachOwned removes an attachment found on the switch or in the records
// (GC), with what is known about it.
func (p *Plugin) detachOwned(ctx context.Context, inv *invocation, eng engine.Engine, att *engine.Attachment, rec *state.Record) error {
	var errs []error
	var data []byte
	cdFile := configdata.FileName(att.ContainerID, att.IfName)
	if rec != nil {
		data = rec.EngineData
		att.Layout = rec.Layout
		att.Netns = rec.Netns
		if rec.ConfigDataFile != "" {
			cdFile = rec.ConfigDataFile
		}
	}
	if err := eng.Detach(ctx, att, data); err != nil {
		errs = append(errs, err)
	}
	if att.Layout != nil {
		if err := att.Layout.RemoveFile(cdFile); err != nil {
			errs = append(errs, err)
		}
		if err := att.Layout.Cleanup(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := inv.store.Delete(att.ContainerID, att.IfName); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
