package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/sockdir"
	"github.com/userspace-cni/userspace/pkg/state"
)

// What the node agent does goes through the plugin's own code: the same
// configuration parsing, locks, engines and teardown as the verbs, so there
// is one way to attach and one way to tear down.

// Outcome is what Restore found and did.
type Outcome string

// Outcomes of Restore.
const (
	// Intact: the switch has the attachment as ADD made it.
	Intact Outcome = "intact"
	// Restored: the switch had lost it, and it is back.
	Restored Outcome = "restored"
	// Skipped: not to be restored: no record (DEL finished), an ADD that
	// did not complete, a DEL that has begun, or a record of an older
	// plugin that does not say how.
	Skipped Outcome = "skipped"
)

// RestoreResult is what Restore did to one attachment.
type RestoreResult struct {
	Outcome Outcome
	// Record is the record as it stands afterwards (nil when there is none).
	Record *state.Record
	// Lost is what the check found wrong before restoring.
	Lost error
}

// Policy loads the node policy the plugin runs under.
func (p *Plugin) Policy() (*policy.Policy, error) {
	return policy.Load(p.Getenv)
}

// Switch names the switch a record's attachment is on: its engine and API
// endpoint (the OVSDB socket or VPP's API socket).
func Switch(pol *policy.Policy, rec *state.Record) (eng, endpoint string, err error) {
	conf, err := parseConf(rec.NetConf, pol)
	if err != nil {
		return "", "", fmt.Errorf("the record's configuration: %w", err)
	}
	switch conf.Host.Engine {
	case netconf.EngineOVSDPDK:
		endpoint, err = pol.OVSDBEndpointOf(conf)
	case netconf.EngineVPP:
		endpoint, err = pol.VPPAPISocketOf(conf)
	}
	return conf.Host.Engine, endpoint, err
}

// recordInvocation rebuilds the invocation ADD ran as from its record.
func recordInvocation(pol *policy.Policy, store *state.Store, log *slog.Logger, rec *state.Record) (*invocation, error) {
	conf, err := parseConf(rec.NetConf, pol)
	if err != nil {
		return nil, fmt.Errorf("the record's configuration: %w", err)
	}
	cargs, err := netconf.ParseArgs(rec.Args)
	if err != nil {
		return nil, fmt.Errorf("the record's CNI_ARGS: %w", err)
	}
	args := &skel.CmdArgs{ContainerID: rec.ContainerID, IfName: rec.IfName, Netns: rec.Netns,
		Args: rec.Args, Path: rec.CNIPath, StdinData: rec.NetConf}
	return &invocation{args: args, conf: conf, cargs: cargs, pol: pol, log: log, store: store, close: func() {}}, nil
}

// Restore checks one attachment on its switch and, if the switch lost it,
// restores it through the engine, under the sandbox's lock as every verb
// works. It never restores an attachment whose ADD did not complete or whose
// DEL has begun. An error wrapping engine.ErrUnavailable means the switch
// is not ready yet: try again.
func (p *Plugin) Restore(ctx context.Context, log *slog.Logger, containerID, ifName string) (*RestoreResult, error) {
	pol, err := p.Policy()
	if err != nil {
		return nil, err
	}
	store := state.New(pol.StateDir)
	unlock, err := store.LockSandbox(ctx, containerID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Read under the lock: a DEL may have finished or begun meanwhile.
	rec, err := store.Load(containerID, ifName)
	if err != nil {
		return nil, err
	}
	if rec == nil || !rec.Restorable() {
		return &RestoreResult{Outcome: Skipped, Record: rec}, nil
	}
	inv, err := recordInvocation(pol, store, log, rec)
	if err != nil {
		return nil, err
	}
	att := attachment(inv, rec.Layout)
	att.Network, att.Netns = rec.Network, rec.Netns
	for _, s := range rec.IPs {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("the record's address %q: %w", s, err)
		}
		n.IP = ip
		att.IPs = append(att.IPs, *n)
	}
	eng, err := p.OpenEngine(ctx, inv.conf, pol, log)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	lost := eng.Check(ctx, att, rec.EngineData)
	if lost == nil {
		// Intact, but perhaps restored by an earlier run whose record
		// could not be saved, or re-exposed by the engine: the socket
		// exposed now is the one a later restore and DEL must recognise.
		before := rec.Layout.Socket
		if err := rec.Layout.RememberSocket(); err != nil {
			return nil, fmt.Errorf("reading socket %s: %w", rec.Layout.SocketPath(), err)
		}
		if !sameID(before, rec.Layout.Socket) {
			if err := store.Save(rec); err != nil {
				return nil, err
			}
		}
		return &RestoreResult{Outcome: Intact, Record: rec}, nil
	}
	if errors.Is(lost, engine.ErrUnavailable) {
		return nil, lost
	}
	data, err := eng.Restore(ctx, att, rec.EngineData)
	if err != nil && errors.Is(err, engine.ErrUnavailable) {
		var again engine.Engine
		var cancel context.CancelFunc
		if ctx, cancel, again, data, err = p.reconcile(ctx, log, eng, inv, att, rec, err); again != nil {
			defer cancel()
			defer again.Close()
			eng = again
		}
	}
	if err != nil {
		return &RestoreResult{Outcome: Skipped, Record: rec, Lost: lost}, fmt.Errorf("restoring: %w", err)
	}
	// The socket the switch now listens on (or the one exposed) is the one
	// DEL will remove, as after ADD.
	if err := rec.Layout.RememberSocket(); err != nil {
		return nil, fmt.Errorf("reading socket %s: %w", rec.Layout.SocketPath(), err)
	}
	rec.EngineData = data
	if err := store.Save(rec); err != nil {
		return nil, err
	}
	if err := eng.Check(ctx, att, data); err != nil {
		return &RestoreResult{Outcome: Restored, Record: rec, Lost: lost}, fmt.Errorf("restored, but CHECK still fails: %w", err)
	}
	log.Info("attachment restored", "containerID", containerID, "ifName", ifName, "lost", lost.Error())
	return &RestoreResult{Outcome: Restored, Record: rec, Lost: lost}, nil
}

// settleTimeout bounds how long a restore whose call timed out keeps the
// sandbox's lock waiting for the switch to answer what it sent. A DEL
// waiting for the lock could not reach that switch meanwhile either.
const settleTimeout = 30 * time.Second

// reconcile follows a restore whose call to the switch timed out (failed).
// The switch may still carry out what it was sent, after this restore gave
// up: a memif re-created on a new socket registration that the record does
// not name, which a DEL trusting the record would leave behind. So, still
// under the sandbox's lock, it waits until the switch has answered
// everything sent (engine.Settler), then restores once more on a new
// connection from what the switch now shows. It returns that connection
// (nil if none), with a context for what is left to do on it (the
// restore's own deadline may be spent), and that attempt's record. Without
// an answer in time it gives up with failed's error, and a warning says a
// late request may still land.
func (p *Plugin) reconcile(ctx context.Context, log *slog.Logger, eng engine.Engine, inv *invocation, att *engine.Attachment, rec *state.Record, failed error) (context.Context, context.CancelFunc, engine.Engine, json.RawMessage, error) {
	s, ok := eng.(engine.Settler)
	if !ok {
		return ctx, nil, nil, nil, failed
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer scancel()
	start := time.Now()
	pending, err := s.Settle(sctx)
	switch {
	case !pending:
		return ctx, nil, nil, nil, failed // no call timed out: nothing can land late
	case err != nil:
		log.Warn("a restore timed out and the switch has not answered since: a request of it may still be carried out after the lock is released",
			"containerID", rec.ContainerID, "ifName", rec.IfName, "error", err)
		return ctx, nil, nil, nil, failed
	}
	log.Info("a restore timed out; the switch has answered everything it was sent since: restoring from what it now has",
		"containerID", rec.ContainerID, "ifName", rec.IfName, "waited", time.Since(start).Round(time.Millisecond), "error", failed)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	again, err := p.OpenEngine(rctx, inv.conf, inv.pol, log)
	if err != nil {
		cancel()
		return ctx, nil, nil, nil, fmt.Errorf("%w; then reconnecting: %w", failed, err)
	}
	data, err := again.Restore(rctx, att, rec.EngineData)
	if err != nil {
		err = fmt.Errorf("%w; then again: %w", failed, err)
	}
	return rctx, cancel, again, data, err
}

// Teardown removes an attachment exactly as DEL does, IPAM included, from
// its record alone (the node agent collecting an orphan whose pod is gone).
func (p *Plugin) Teardown(rec *state.Record) error {
	if len(rec.NetConf) == 0 {
		return fmt.Errorf("the record of container %s interface %s does not carry its configuration (written by an older plugin): GC removes it", rec.ContainerID, rec.IfName)
	}
	return p.Del(&skel.CmdArgs{ContainerID: rec.ContainerID, IfName: rec.IfName, Netns: rec.Netns,
		Args: rec.Args, Path: rec.CNIPath, StdinData: rec.NetConf})
}

// sameID reports whether two recorded socket identities name one file.
func sameID(a, b *sockdir.FileID) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
