package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/ovsdb"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/vpp"
)

// switchKey names one switch: its engine and API endpoint.
type switchKey struct {
	engine, endpoint string
}

func (k switchKey) String() string { return k.engine + " " + k.endpoint }

// probeTimeout bounds one probe of a switch.
const probeTimeout = 2 * time.Second

// prober tells whether a switch answers and which run of it answers: an
// identity that changes when the switch restarted or lost its state.
type prober interface {
	probe(ctx context.Context) (identity string, err error)
	close()
}

func newProber(k switchKey, pol *policy.Policy, log *slog.Logger) prober {
	if k.engine == netconf.EngineVPP {
		return &vppProber{socket: k.endpoint, log: log}
	}
	runDir := pol.OVSRunDir
	if runDir == "" {
		runDir = filepath.Dir(k.endpoint[len("unix:"):])
	}
	return &ovsProber{endpoint: k.endpoint, runDir: runDir, log: log}
}

// guardInterval is how soon the watcher of ovs-vswitchd's lock asks for it
// again after releasing it while no ovs-vswitchd runs.
const guardInterval = 50 * time.Millisecond

// guard starts the watcher of ovs-vswitchd's lock (ovsdb.WatchVswitchd):
// each time ovs-vswitchd is gone, the sockets it left for server-mode ports
// are removed by clean before a restarted one can create its ports, and
// each death changes the identity the prober reports, however quickly the
// switch came back. It returns once the watcher is queued (or after
// probeTimeout), with the function that stops the watcher.
func (p *ovsProber) guard(clean func()) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done, asked := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		// Every grant counts, not only a death seen while queued: a grant on
		// a new connection (ovsdb-server restarted, or the watcher's own
		// connection lost) says no ovs-vswitchd held the lock then, which
		// is how a restart of the whole OVS (both daemons, the database
		// kept) shows.
		ovsdb.WatchVswitchd(ctx, p.endpoint, guardInterval, func(bool) {
			p.deaths.Add(1)
			clean()
		}, func() { close(asked) })
	}()
	// In the queue before the first probe, so that a restart from then on
	// is seen; a switch not answering is no reason to wait longer.
	select {
	case <-asked:
	case <-time.After(probeTimeout):
	}
	return func() { cancel(); <-done }
}

// ovsProber keeps an OVSDB connection and reports the switch's own
// identity: its database (the Open_vSwitch row's UUID, new in an empty
// database) and the runs of ovs-vswitchd (its lock lost, as the lock
// watcher and the probes see it). The agent's own connection is no part of
// it: a probe that timed out under load and reconnected finds the same
// switch, and that is no restart.
type ovsProber struct {
	endpoint, runDir string
	log              *slog.Logger
	// connect dials the switch (ovsdb.Connect; replaced in unit tests).
	connect func(ctx context.Context) (ovsConn, error)
	e       ovsConn
	// vswitchdGone counts the probes that found ovs-vswitchd not running,
	// deaths the times the lock watcher got its lock (it died, or had not
	// taken it yet): a restart in between makes the identity differ.
	vswitchdGone int
	deaths       atomic.Int64
	wasRunning   bool
}

// ovsConn is what a probe asks of an OVSDB connection.
type ovsConn interface {
	Identity(ctx context.Context) (ovsdb.Identity, error)
	Close()
}

func (p *ovsProber) probe(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if p.e == nil {
		connect := p.connect
		if connect == nil {
			connect = func(ctx context.Context) (ovsConn, error) {
				return ovsdb.Connect(ctx, ovsdb.Config{Endpoint: p.endpoint, RunDir: p.runDir, CallTimeout: probeTimeout, Logger: p.log})
			}
		}
		e, err := connect(ctx)
		if err != nil {
			return "", err
		}
		p.e = e
	}
	id, err := p.e.Identity(ctx)
	if err != nil {
		p.close()
		return "", err
	}
	if !id.Vswitchd {
		if p.wasRunning {
			p.vswitchdGone++
		}
		p.wasRunning = false
		return "", fmt.Errorf("ovs-vswitchd is not running on %s", p.endpoint)
	}
	p.wasRunning = true
	if id.Root == "" {
		return "", fmt.Errorf("the database at %s is not initialised", p.endpoint)
	}
	// next_cfg is left out: every ovs-vsctl change bumps it, and a change
	// is no restart. An ovsdb-server restarted on the same database loses
	// nothing the plugin made (the ports are in the database, and
	// ovs-vswitchd keeps running); one restarted empty has a new root.
	return fmt.Sprintf("root %s vswitchd %d/%d", id.Root, p.vswitchdGone, p.deaths.Load()), nil
}

func (p *ovsProber) close() {
	if p.e != nil {
		p.e.Close()
		p.e = nil
	}
}

// vppProber keeps an API connection: VPP loses all configuration when it
// restarts, and its restart ends the connection, so every new connection
// is a new identity.
type vppProber struct {
	socket string
	log    *slog.Logger
	e      *vpp.Engine
	conns  int
}

func (p *vppProber) probe(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if p.e == nil {
		e, err := vpp.Connect(ctx, vpp.Config{Socket: p.socket, IfType: netconf.IfTypeMemif, CallTimeout: probeTimeout, Logger: p.log})
		if err != nil {
			return "", err
		}
		p.e, p.conns = e, p.conns+1
	}
	if err := p.e.Ping(ctx); err != nil {
		p.close()
		return "", err
	}
	return fmt.Sprintf("conn %d", p.conns), nil
}

func (p *vppProber) close() {
	if p.e != nil {
		p.e.Close()
		p.e = nil
	}
}

// funcProber is Config.Probe as a prober.
type funcProber struct {
	k switchKey
	f func(ctx context.Context, engine, endpoint string) (string, error)
}

func (p funcProber) probe(ctx context.Context) (string, error) {
	return p.f(ctx, p.k.engine, p.k.endpoint)
}
func (funcProber) close() {}
