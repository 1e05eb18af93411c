package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/deviceinfo"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/sockdir"
	"github.com/userspace-cni/userspace/pkg/state"
)

// Add attaches the pod to the switch. Every step registers its undo; on
// failure the undos run in reverse, so a failed ADD leaves no port, socket,
// file, record or IP allocation behind.
func (p *Plugin) Add(args *skel.CmdArgs) (err error) {
	ph := newPhases()
	inv, err := p.setup(args)
	if err != nil {
		return err
	}
	defer inv.close()
	defer func() { ph.log(inv.log, "ADD") }()
	ph.mark("setup")
	ctx, cancel := context.WithTimeout(context.Background(), verbTimeout)
	defer cancel()

	// Resources the undo steps use (the switch and API connections, the
	// node lock) are released only after the rollback has run: plain
	// defers would release them first.
	var undo undoStack
	var closers []func()
	// IPAM runs alongside everything up to the attach (and the attach too,
	// unless the engine needs the address): an IPAM plugin is another
	// process and costs as much as the rest of ADD.
	ipam := &ipamRun{done: make(chan error, 1)}
	defer func() {
		ierr := ipam.wait(ph)
		if err == nil && ierr != nil {
			err = ierr
		}
		if err != nil {
			undo = append(ipam.undo, undo...)
			if uerr := undo.run(); uerr != nil {
				inv.log.Error("rollback of failed ADD incomplete", "error", uerr)
				err = fmt.Errorf("%w (rollback also failed: %v)", err, uerr)
			}
		}
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	// An attachment added before and never deleted keeps its address until
	// it is replaced under the lock (IPAM plugins refuse a second
	// allocation); otherwise IPAM starts now.
	if old, err := inv.store.Load(args.ContainerID, args.IfName); err != nil || old == nil {
		ipam.start(ctx, p, inv)
	}

	pc, err := lookupPod(ctx, inv)
	if err != nil {
		return err
	}
	if pc != nil {
		closers = append(closers, func() {
			inv.log.Debug("Kubernetes API use", "requests", pc.client.Requests())
			pc.client.Close()
		})
		ph.mark("pod")
	}
	layout, err := socketLayout(inv, pc)
	if err != nil {
		return err
	}
	unlock, err := inv.store.Lock(ctx)
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	}
	// First in closers: released last, after the rollback.
	closers = append([]func(){unlock}, closers...)
	ph.mark("lock")

	// A runtime should DEL before adding the same attachment again; if it
	// did not, replace what the earlier ADD left (its socket is still live).
	// Looked for again, now under the lock, only if it was there before.
	var old *state.Record
	if !ipam.started {
		// An unreadable record is left to DEL, as before the lock.
		old, _ = inv.store.Load(args.ContainerID, args.IfName)
	}
	if old != nil {
		inv.log.Warn("replacing an attachment that was added before and never deleted")
		if err := p.teardown(ctx, inv, old, ph); err != nil {
			return asCNIError(err, "replacing the earlier attachment")
		}
		// Its address goes too: IPAM plugins refuse a second allocation
		// for the same attachment (host-local: "duplicate allocation is
		// not allowed"), which would fail this ADD after the teardown.
		if err := releaseIPAM(ctx, inv); err != nil {
			return asCNIError(err, "replacing the earlier attachment")
		}
		if err := inv.store.Delete(args.ContainerID, args.IfName); err != nil {
			return asCNIError(err, "replacing the earlier attachment")
		}
	}
	ipam.start(ctx, p, inv)

	if err := layout.Prepare(inv.conf.Host.Vhost.Group); err != nil {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("preparing socket directory: %v", err), "")
	}
	undo.push(layout.Cleanup)
	if err := layout.RemoveStaleSocket(); err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	ph.mark("socketDir")

	eng, err := p.OpenEngine(ctx, inv.conf, inv.pol, inv.log)
	if err != nil {
		return asCNIError(err, "connecting to the switch")
	}
	closers = append(closers, eng.Close)
	ph.mark("connect")
	att := attachment(inv, layout)
	if inv.conf.Host.NetType == netconf.NetTypeInterface && inv.conf.IPAM.Type != "" {
		if err := ipam.wait(ph); err != nil {
			return err
		}
		for _, ip := range ipam.res.IPs {
			att.IPs = append(att.IPs, ip.Address)
		}
	}
	engineData, err := eng.Attach(ctx, att)
	if err != nil {
		return asCNIError(err, "attaching to the switch")
	}
	undo.push(func() error {
		rctx, rcancel := context.WithTimeout(context.Background(), rollbackTimeout)
		defer rcancel()
		return eng.Detach(rctx, att, engineData)
	})
	ph.mark("attach")
	if err := ipam.wait(ph); err != nil {
		return err
	}
	ipamRes := ipam.res

	mac := inv.conf.MACFor(inv.cargs)
	result := buildResult(inv, layout, ipamRes, mac)
	cdFile, err := configdata.Write(layout, containerData(inv, layout, result))
	if err != nil {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("publishing config data: %v", err), "")
	}
	undo.push(func() error { return layout.RemoveFile(cdFile) })

	cd := containerData(inv, layout, result)
	if pc != nil {
		if err := pc.client.AddConfigData(ctx, pc.pod, cd, pc.mappedDir); err != nil {
			return kubeError(err)
		}
		undo.push(func() error {
			rctx, rcancel := context.WithTimeout(context.Background(), kubeTimeout)
			defer rcancel()
			return pc.client.RemoveConfigData(rctx, inv.cargs.PodNamespace, inv.cargs.PodName, args.ContainerID, args.IfName)
		})
		ph.mark("annotate")
	}
	devInfo := inv.conf.RuntimeConfig.CNIDeviceInfoFile
	if devInfo != "" {
		if err := deviceinfo.Write(devInfo, deviceInfo(inv, layout, pc), inv.pol.DeviceInfoDirs); err != nil {
			return types.NewError(types.ErrIOFailure, fmt.Sprintf("writing runtimeConfig.CNIDeviceInfoFile: %v", err), "")
		}
		undo.push(func() error { return deviceinfo.Remove(devInfo, inv.pol.DeviceInfoDirs) })
	}

	notes, err := notesLayout(inv, pc)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	var notesFiles []string
	if notes != nil {
		if err := notes.Prepare(inv.conf.Host.Vhost.Group); err != nil {
			return types.NewError(types.ErrIOFailure, fmt.Sprintf("preparing %s: %v", notes.Dir, err), "")
		}
		undo.push(notes.Cleanup)
		if notesFiles, err = writeNotes(notes, inv, layout.SocketName, cd.IPResult); err != nil {
			return types.NewError(types.ErrIOFailure, fmt.Sprintf("publishing config data: %v", err), "")
		}
		undo.push(func() error {
			for _, f := range notesFiles {
				_ = notes.RemoveFile(f)
			}
			return nil
		})
	}

	rec := &state.Record{
		ContainerID:    args.ContainerID,
		IfName:         args.IfName,
		Network:        inv.conf.Name,
		Netns:          args.Netns,
		PodNamespace:   inv.cargs.PodNamespace,
		PodName:        inv.cargs.PodName,
		PodUID:         inv.cargs.PodUID,
		Engine:         inv.conf.Host.Engine,
		Layout:         layout,
		ConfigDataFile: cdFile,
		NotesLayout:    notes,
		NotesFiles:     notesFiles,
		Annotated:      pc != nil,
		DeviceInfoFile: devInfo,
		IPAM:           inv.conf.IPAM.Type,
		EngineData:     engineData,
		Created:        time.Now().UTC(),
	}
	if err := inv.store.Save(rec); err != nil {
		return types.NewError(types.ErrIOFailure, err.Error(), "")
	}
	ph.mark("publish")
	inv.log.Info("attached", "socket", layout.SocketPath(), "engine", inv.conf.Host.Engine)
	return types.PrintResult(result, inv.conf.CNIVersion)
}

// ipamRun is the IPAM plugin's ADD running alongside the rest of ADD.
type ipamRun struct {
	started, waited bool
	done            chan error
	err             error
	res             *types100.Result
	undo            undoStack
}

// start runs IPAM once; later calls do nothing.
func (r *ipamRun) start(ctx context.Context, p *Plugin, inv *invocation) {
	if r.started {
		return
	}
	r.started = true
	go func() {
		res, err := p.ipamAdd(ctx, inv, &r.undo)
		r.res = res
		r.done <- err
	}()
}

// wait returns IPAM's outcome (nil if it never started); only then are res
// and undo safe to read.
func (r *ipamRun) wait(ph *phases) error {
	if r.started && !r.waited {
		r.err, r.waited = <-r.done, true
		ph.mark("ipam")
	}
	return r.err
}

// ipamAdd runs the IPAM plugin, if any, and registers its release.
func (p *Plugin) ipamAdd(ctx context.Context, inv *invocation, undo *undoStack) (*types100.Result, error) {
	ipamType := inv.conf.IPAM.Type
	if ipamType == "" {
		return nil, nil
	}
	r, err := invoke.DelegateAdd(ctx, ipamType, inv.args.StdinData, nil)
	if err != nil {
		return nil, err
	}
	undo.push(func() error {
		rctx, rcancel := context.WithTimeout(context.Background(), rollbackTimeout)
		defer rcancel()
		return invoke.DelegateDel(rctx, ipamType, inv.args.StdinData, nil)
	})
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("IPAM plugin %q returned an unusable result: %v", ipamType, err), "")
	}
	if len(res.IPs) == 0 {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("IPAM plugin %q returned no addresses", ipamType), "")
	}
	return res, nil
}

// buildResult is the CNI result: the pod-side interface (with the socket
// for 1.1.0) and the IPAM addresses pointing at it.
func buildResult(inv *invocation, l *sockdir.Layout, ipamRes *types100.Result, mac string) *types100.Result {
	iface := &types100.Interface{
		Name:    inv.args.IfName,
		Mac:     mac,
		Mtu:     inv.conf.MTU,
		Sandbox: inv.args.Netns,
	}
	if inv.conf.CNIVersion == "1.1.0" {
		iface.SocketPath = l.ConnectPath()
	}
	res := &types100.Result{CNIVersion: types100.ImplementedSpecVersion, Interfaces: []*types100.Interface{iface}, DNS: inv.conf.DNS}
	if ipamRes != nil {
		zero := 0
		for _, ip := range ipamRes.IPs {
			c := *ip
			c.Interface = &zero
			res.IPs = append(res.IPs, &c)
		}
		res.Routes = ipamRes.Routes
		if !isEmptyDNS(ipamRes.DNS) {
			res.DNS = ipamRes.DNS
		}
	}
	return res
}

func isEmptyDNS(d types.DNS) bool {
	return len(d.Nameservers) == 0 && d.Domain == "" && len(d.Search) == 0 && len(d.Options) == 0
}

// containerData is what the pod app reads: the container side with the
// socket file filled in, and the addresses.
func containerData(inv *invocation, l *sockdir.Layout, result *types100.Result) *configdata.ConfigData {
	ct := inv.conf.Container
	switch ct.IfType {
	case netconf.IfTypeVhostUser:
		ct.Vhost.Socketfile = l.SocketName
	case netconf.IfTypeMemif:
		ct.Memif.Socketfile = l.SocketName
	}
	ipRes := *result
	ipRes.CNIVersion = "1.0.0"
	if inv.conf.CNIVersion == "1.1.0" {
		ipRes.CNIVersion = "1.1.0"
	}
	return &configdata.ConfigData{
		ContainerID: inv.args.ContainerID,
		IfName:      inv.args.IfName,
		Name:        inv.conf.Name,
		Config:      ct,
		IPResult:    &ipRes,
	}
}
