package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/deviceinfo"
	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/rollback"
	"github.com/userspace-cni/userspace/pkg/sockdir"
	"github.com/userspace-cni/userspace/pkg/state"
)

// Add attaches the pod to the switch. Every step registers its undo; on
// failure the undos run in reverse, so a failed ADD leaves no port, socket,
// file, record or IP allocation behind.
//
// Everything with a side effect, IPAM included, happens under the sandbox's
// lock: a DEL of the same attachment waits for ADD to finish (or ADD for the
// DEL), so ADD never reports an address that a racing DEL released.
func (p *Plugin) Add(args *skel.CmdArgs) (err error) {
	ph := newPhases()
	inv, ctx, end, err := p.begin(args)
	if err != nil {
		return err
	}
	defer end()
	defer func() { ph.log(inv.log, "ADD") }()
	ph.mark("setup")
	if n := len(args.ContainerID); n > maxContainerIDLen {
		return types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf(
			"invalid CNI_CONTAINERID %q...: %d characters, at most %d are supported", args.ContainerID[:16], n, maxContainerIDLen), "")
	}
	a := &adding{inv: inv, ph: ph, t: &rollback.Tx{}}
	defer finish(a.t, inv.log, &err)
	if err := p.prepare(ctx, a); err != nil {
		return err
	}
	if err := p.attach(ctx, a); err != nil {
		return err
	}
	result, err := a.publish(ctx)
	if err != nil {
		return err
	}
	inv.log.Info("attached", "socket", a.ps.layout.SocketPath(), "engine", inv.conf.Host.Engine)
	return types.PrintResult(result, inv.conf.CNIVersion)
}

// finish rolls back if *err is set, then releases the resources.
func finish(t *rollback.Tx, log *slog.Logger, err *error) {
	if *err != nil {
		if uerr := t.Rollback(); uerr != nil {
			log.Error("rollback of failed ADD incomplete: DEL will remove the rest", "error", uerr)
			*err = fmt.Errorf("%w (rollback also failed: %v)", *err, uerr)
		}
	}
	t.Release()
}

// adding is one ADD as its phases hand it on: each phase registers its
// side effects' undo steps with t, which rolls them back if a later one
// fails.
type adding struct {
	inv  *invocation
	ph   *phases
	t    *rollback.Tx
	pc   *podContext // nil without a kubeconfig or a pod
	ps   paths
	rec  *state.Record
	ipam *pendingIPAM // runs alongside the rest; wait for its result
	// Set by attach.
	att        *engine.Attachment
	engineData json.RawMessage
}

// prepare takes the sandbox's lock, claims the attachment's paths, writes
// its record as incomplete, starts IPAM and lays out the socket directory:
// everything before the switch.
func (p *Plugin) prepare(ctx context.Context, a *adding) error {
	inv, t, args := a.inv, a.t, a.inv.args
	pc, err := p.lookupPod(ctx, inv)
	if err != nil {
		return err
	}
	if pc != nil {
		t.ReleaseWith(func() {
			inv.log.Debug("Kubernetes API use", "via", pc.client.Via(), "requests", pc.client.Requests())
			pc.client.Close()
		})
		a.ph.mark("pod")
	}
	a.pc = pc
	ps, err := addPaths(inv, pc)
	if err != nil {
		return err
	}
	a.ps = ps
	unlock, err := inv.store.LockSandbox(ctx, args.ContainerID)
	if err != nil {
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	}
	t.ReleaseWith(unlock)
	a.ph.mark("lock")

	if err := p.replaceEarlier(ctx, inv, a.ph); err != nil {
		return err
	}
	if err := claimAll(inv.store, ps, args.ContainerID, args.IfName); err != nil {
		return err
	}
	t.AfterCleanRollback(func() error { return releaseAll(inv.log, inv.store, ps, args.ContainerID, args.IfName) })
	a.rec = newRecord(inv, ps, pc)
	if err := inv.store.Save(a.rec); err != nil {
		return types.NewError(types.ErrIOFailure, err.Error(), "")
	}
	t.AfterCleanRollback(func() error { return inv.store.Delete(args.ContainerID, args.IfName) })

	// IPAM runs alongside everything up to the attach (and the attach too,
	// unless the engine needs the address): an IPAM plugin is another
	// process and costs as much as the rest of ADD.
	a.ipam = startIPAM(ctx, inv, a.ph)
	t.Undo(a.ipam.release)
	t.Undo(func() error {
		own := ownership(inv.log, inv.store, ps, a.rec, args.ContainerID, args.IfName)
		own.cdFile = false // its own undo, once written: the path may hold a file not the plugin's
		return removeFiles(inv.log, ps, own, args.IfName)
	})

	if err := ps.layout.Prepare(inv.conf.Host.Vhost.Group); err != nil {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("preparing socket directory: %v", err), "")
	}
	if err := ps.layout.RemoveStaleSocket(); err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	a.ph.mark("socketDir")
	return nil
}

// attach connects to the switch and attaches the interface; an engine that
// needs the address (netType interface) waits for IPAM first.
func (p *Plugin) attach(ctx context.Context, a *adding) error {
	inv, layout := a.inv, a.ps.layout
	eng, err := p.OpenEngine(ctx, inv.conf, inv.pol, inv.log)
	if err != nil {
		return asCNIError(err, "connecting to the switch")
	}
	a.t.ReleaseWith(eng.Close)
	a.ph.mark("connect")
	att := attachment(inv, layout)
	if inv.conf.Host.NetType == netconf.NetTypeInterface {
		res, err := a.ipam.wait()
		if err != nil {
			return err
		}
		for _, ip := range ipamIPs(res) {
			att.IPs = append(att.IPs, ip.Address)
		}
	}
	engineData, err := eng.Attach(ctx, att)
	if err != nil {
		return asCNIError(err, "attaching to the switch")
	}
	a.t.Undo(func() error {
		rctx, rcancel := context.WithTimeout(context.Background(), rollbackTimeout)
		defer rcancel()
		return eng.Detach(rctx, att, engineData)
	})
	// The socket the switch created (or the plugin linked) is the one DEL
	// will remove; a file a pod later puts at that name is not.
	if err := layout.RememberSocket(); err != nil {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("reading socket %s: %v", layout.SocketPath(), err), "")
	}
	a.att, a.engineData = att, engineData
	a.ph.mark("attach")
	return nil
}

// publish tells the pod (config data file, annotation, device info, the
// notes' files) and completes the record: the attachment exists once the
// record says so.
func (a *adding) publish(ctx context.Context) (*types100.Result, error) {
	inv, t, layout, pc, rec := a.inv, a.t, a.ps.layout, a.pc, a.rec
	args := inv.args
	ipamRes, err := a.ipam.wait()
	if err != nil {
		return nil, err
	}
	result := buildResult(inv, layout, ipamRes, inv.conf.MACFor(inv.cargs))
	cd := containerData(inv, layout, result)
	if _, err := configdata.Write(layout, cd); err != nil {
		return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("publishing config data: %v", err), "")
	}
	t.Undo(func() error { return layout.RemoveFile(a.ps.cdFile) })

	if pc != nil {
		if err := pc.client.Publish(ctx, cd, pc.mappedDir); err != nil {
			return nil, kubeError(err)
		}
		t.Undo(func() error {
			rctx, rcancel := context.WithTimeout(context.Background(), kubeTimeout)
			defer rcancel()
			return pc.client.Unpublish(rctx, inv.cargs.PodNamespace, inv.cargs.PodName, args.ContainerID, args.IfName)
		})
		a.ph.mark("annotate")
	}
	if devInfo := rec.DeviceInfoFile; devInfo != "" {
		if err := deviceinfo.Write(inv.pol, devInfo, deviceInfo(inv, layout, pc)); err != nil {
			return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("writing runtimeConfig.CNIDeviceInfoFile: %v", err), "")
		}
		t.Undo(func() error { return deviceinfo.Remove(inv.pol, devInfo) })
	}
	if notes := a.ps.notes; notes != nil {
		if err := notes.Prepare(inv.conf.Host.Vhost.Group); err != nil {
			return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("preparing %s: %v", notes.Dir, err), "")
		}
		files, err := writeNotes(notes, inv, layout.SocketName, cd.IPResult)
		if err != nil {
			return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("publishing config data: %v", err), "")
		}
		rec.NotesFiles = files
	}

	rec.Incomplete = false
	rec.EngineData = a.engineData
	for _, ip := range a.att.IPs {
		rec.IPs = append(rec.IPs, ip.String())
	}
	if err := inv.store.Save(rec); err != nil {
		return nil, types.NewError(types.ErrIOFailure, err.Error(), "")
	}
	a.ph.mark("publish")
	return result, nil
}

// addPaths works out where the attachment's files go, before any is made.
func addPaths(inv *invocation, pc *podContext) (paths, error) {
	layout, err := socketLayout(inv, pc)
	if err != nil {
		return paths{}, err
	}
	notes, err := notesLayout(inv, pc)
	if err != nil {
		return paths{}, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	return paths{layout: layout, cdFile: configdata.FileName(inv.args.ContainerID, inv.args.IfName), notes: notes}, nil
}

// newRecord is the attachment's record as ADD writes it before its first
// side effect: incomplete, with everything DEL needs to find what ADD may
// have made.
func newRecord(inv *invocation, ps paths, pc *podContext) *state.Record {
	return &state.Record{
		ContainerID:    inv.args.ContainerID,
		IfName:         inv.args.IfName,
		Network:        inv.conf.Name,
		Netns:          inv.args.Netns,
		PodNamespace:   inv.cargs.PodNamespace,
		PodName:        inv.cargs.PodName,
		PodUID:         inv.cargs.PodUID,
		Engine:         inv.conf.Host.Engine,
		Layout:         ps.layout,
		ConfigDataFile: ps.cdFile,
		NotesLayout:    ps.notes,
		Annotated:      pc != nil,
		DeviceInfoFile: inv.conf.RuntimeConfig.CNIDeviceInfoFile,
		IPAM:           inv.conf.IPAM.Type,
		Created:        time.Now().UTC(),
		Incomplete:     true,
		NetConf:        inv.args.StdinData,
		CNIPath:        inv.args.Path,
		Args:           inv.args.Args,
	}
}

// replaceEarlier removes what an earlier ADD of the same attachment left
// when the runtime did not DEL it before adding it again (its socket is
// still live, and IPAM plugins refuse a second allocation: host-local says
// "duplicate allocation is not allowed").
func (p *Plugin) replaceEarlier(ctx context.Context, inv *invocation, ph *phases) error {
	old, err := inv.store.Load(inv.args.ContainerID, inv.args.IfName)
	if err != nil {
		inv.log.Warn("replacing an unreadable record of this attachment", "error", err)
		return nil
	}
	if old == nil {
		return nil
	}
	inv.log.Warn("replacing an attachment that was added before and never deleted")
	markDeleting(inv, old)
	ps, err := p.teardown(ctx, inv, old, ph)
	if err == nil {
		err = releaseIPAM(ctx, inv)
	}
	if err == nil {
		err = inv.store.Delete(inv.args.ContainerID, inv.args.IfName)
	}
	if err == nil {
		err = releaseAll(inv.log, inv.store, ps, inv.args.ContainerID, inv.args.IfName)
	}
	if err != nil {
		return asCNIError(err, "replacing the earlier attachment")
	}
	return nil
}

// pendingIPAM is the IPAM plugin's ADD running alongside the rest of ADD.
type pendingIPAM struct {
	inv  *invocation
	ph   *phases
	done chan struct{}
	res  *types100.Result
	err  error
	seen bool
}

// startIPAM starts IPAM ADD; without IPAM it is done at once with no result.
func startIPAM(ctx context.Context, inv *invocation, ph *phases) *pendingIPAM {
	r := &pendingIPAM{inv: inv, ph: ph, done: make(chan struct{})}
	c := inv.ipam("ADD")
	if c == nil {
		close(r.done)
		return r
	}
	go func() {
		defer close(r.done)
		r.res, r.err = c.add(ctx)
	}()
	return r
}

// wait returns IPAM's outcome.
func (r *pendingIPAM) wait() (*types100.Result, error) {
	<-r.done
	if !r.seen {
		r.seen = true
		r.ph.mark("ipam")
	}
	return r.res, r.err
}

// release undoes IPAM ADD once it has ended: after a success, and after a
// run that timed out or broke off (it may have allocated; DEL of an address
// never allocated is harmless). An IPAM plugin that answered with an error
// cleaned up after itself.
func (r *pendingIPAM) release() error {
	<-r.done
	var cniErr *types.Error
	if r.err != nil && errors.As(r.err, &cniErr) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	return releaseIPAM(ctx, r.inv)
}

func ipamIPs(res *types100.Result) []*types100.IPConfig {
	if res == nil {
		return nil
	}
	return res.IPs
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
	ct.SetSocketFile(l.SocketName)
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
