// Package plugin implements the CNI verbs of the userspace plugin: one
// readable flow per verb over the configuration, the socket directory, IPAM,
// the switch engine, the config data for the pod and the local record.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/logging"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/ovsdb"
	"github.com/userspace-cni/userspace/pkg/podapi"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/sockdir"
	"github.com/userspace-cni/userspace/pkg/state"
	"github.com/userspace-cni/userspace/pkg/vpp"
)

// Bounds on one invocation. The runtime has its own, longer timeout; these
// make a stuck switch, IPAM plugin or lock an error rather than a hang. Each
// switch call has its own bound of a few seconds (the engines'), so a hung
// switch fails a verb in seconds, and only verbs of the same sandbox ever
// wait for it (see state.LockSandbox).
const (
	verbTimeout     = time.Minute
	connectTimeout  = 3 * time.Second
	rollbackTimeout = 15 * time.Second
	// switchCallTimeout bounds one request to a switch.
	switchCallTimeout = 4 * time.Second
)

// maxContainerIDLen bounds the container ids ADD accepts: they name
// directories (the notes' layouts) and records. Runtimes use 64 hex digits.
const maxContainerIDLen = 128

// EngineOpener connects to the switch a configuration names.
type EngineOpener func(ctx context.Context, conf *netconf.NetConf, pol *policy.Policy, log *slog.Logger) (engine.Engine, error)

// Plugin carries what the verbs depend on, so tests can substitute them.
type Plugin struct {
	Getenv     func(string) string
	Stderr     io.Writer
	OpenEngine EngineOpener
	// KubeHelper is the path of cmd/userspace-kube, which makes the
	// Kubernetes API requests of a network with a kubeconfig.
	KubeHelper string
}

// New returns the plugin wired to the real environment and switches.
func New() *Plugin {
	return &Plugin{Getenv: os.Getenv, Stderr: os.Stderr, OpenEngine: OpenEngine, KubeHelper: kubeHelper()}
}

// kubeHelper is the Kubernetes helper's path: next to this binary, where
// the installer puts it. Not from CNI_PATH or the configuration, which name
// other plugins.
func kubeHelper() string {
	self, err := os.Executable()
	if err != nil {
		// Start then fails naming this bare name.
		return podapi.HelperName
	}
	return filepath.Join(filepath.Dir(self), podapi.HelperName)
}

// Funcs returns the verbs for skel.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, GC: p.GC, Status: p.Status}
}

// OpenEngine connects to the switch of the configuration's host engine.
func OpenEngine(ctx context.Context, conf *netconf.NetConf, pol *policy.Policy, log *slog.Logger) (engine.Engine, error) {
	switch conf.Host.Engine {
	case netconf.EngineOVSDPDK:
		endpoint, err := pol.OVSDBEndpointOf(conf)
		if err != nil {
			return nil, err
		}
		runDir := pol.OVSRunDir
		if runDir == "" {
			runDir = filepath.Dir(endpoint[len("unix:"):])
		}
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		return ovsdb.Connect(cctx, ovsdb.Config{
			Endpoint:       endpoint,
			RunDir:         runDir,
			ConfirmTimeout: pol.OVSConfirmTimeout(),
			CallTimeout:    switchCallTimeout,
			Logger:         log,
		})
	case netconf.EngineVPP:
		socket, err := pol.VPPAPISocketOf(conf)
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		return vpp.Connect(cctx, vpp.Config{Socket: socket, IfType: conf.Host.IfType, Logger: log})
	default:
		return nil, types.NewError(types.ErrUnsupportedField,
			fmt.Sprintf("host.engine %q is not available in this build of the plugin", conf.Host.Engine), "")
	}
}

// parseConf reads a network configuration and admits the host paths it
// names under the node policy.
func parseConf(data []byte, pol *policy.Policy) (*netconf.NetConf, error) {
	conf, err := netconf.Parse(data)
	if err != nil {
		return nil, err
	}
	if err := pol.Admit(conf); err != nil {
		return nil, err
	}
	return conf, nil
}

// invocation is what every verb starts from.
type invocation struct {
	args  *skel.CmdArgs
	conf  *netconf.NetConf
	cargs *netconf.Args
	pol   *policy.Policy
	log   *slog.Logger
	store *state.Store
	close func()
}

// setup loads the node policy and the configuration and opens the log.
func (p *Plugin) setup(args *skel.CmdArgs) (*invocation, error) {
	if err := refuseRecursion(p.Getenv); err != nil {
		return nil, err
	}
	pol, err := policy.Load(p.Getenv)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	conf, err := parseConf(args.StdinData, pol)
	if err != nil {
		return nil, err
	}
	cargs, err := netconf.ParseArgs(args.Args)
	if err != nil {
		return nil, err
	}
	log, closeLog, err := logging.Open(conf.LogFile, conf.LogLevel, pol, p.Stderr)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	log = log.With("containerID", args.ContainerID, "ifName", args.IfName)
	return &invocation{args: args, conf: conf, cargs: cargs, pol: pol, log: log,
		store: state.New(pol.StateDir), close: closeLog}, nil
}

// begin sets up a verb and the context that bounds it (verbTimeout); end
// cancels the context and closes the log.
func (p *Plugin) begin(args *skel.CmdArgs) (inv *invocation, ctx context.Context, end func(), err error) {
	if inv, err = p.setup(args); err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), verbTimeout)
	return inv, ctx, func() { cancel(); inv.close() }, nil
}

// socketLayout works out where the attachment's socket goes and checks,
// before ADD creates anything, that it may go there: vhost.group must name
// a group of this node, and a directory other pods can see is refused under
// the node policy's strict isolation, and otherwise logged as a warning.
func socketLayout(inv *invocation, pc *podContext) (*sockdir.Layout, error) {
	l, seen, err := planLayout(inv, pc)
	if err != nil {
		return nil, err
	}
	if g := inv.conf.Host.Vhost.Group; g != "" {
		if _, err := sockdir.LookupGID(g); err != nil {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("invalid host.vhost.group %q: %v", g, err), "")
		}
	}
	if seen.dir == "" {
		return l, nil
	}
	if inv.pol.StrictIsolation() {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(
			"node policy isolation %q: the socket directory %s is not the pod's own volume: %s; "+
				"only the pod's own emptyDir volume %q, found through the configuration's kubeconfig, is accepted",
			policy.IsolationStrict, l.Dir, seen.how, inv.pol.SharedDirVolume), "")
	}
	attrs := []any{"dir", l.Dir, "seenBy", seen.how}
	if l.Unlisted == "" && listable(seen.dir) {
		attrs = append(attrs, "listable", "other pods can list it too (make it mode 0711)")
	}
	inv.log.Warn("the socket directory is visible to other pods: any of their processes that knows "+
		"the container id can reach the socket. The pod's own shared-dir volume isolates it; "+
		"see \"Isolation between pods\" in the README", attrs...)
	return l, nil
}

// listable reports whether processes of other uids can list dir.
func listable(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.Mode().Perm()&0o004 != 0
}

// exposure is how other pods can see a socket directory: the directory they
// mount and how. The zero value is the pod's own emptyDir volume, which no
// other pod sees.
type exposure struct {
	dir, how string
}

// planLayout is where the attachment's socket goes: the pod's shared-dir
// volume, else the configuration's sharedDir, else the engine's default;
// and how other pods can see it.
func planLayout(inv *invocation, pc *podContext) (l *sockdir.Layout, seen exposure, err error) {
	h := &inv.conf.Host
	name := h.SocketFile()
	if name == "" {
		name = configdata.DefaultSocketName(h.IfType, inv.args.ContainerID, inv.args.IfName)
	}
	if pc != nil && pc.dir != "" {
		if l, err = podSocketLayout(inv, pc, name); err != nil {
			return nil, exposure{}, err
		}
		if !pc.emptyDir {
			seen = exposure{pc.dir, "the pod's volume is a hostPath volume, which other pods may mount too"}
		}
		l.PodCreates = podCreatesSocket(h)
		return l, seen, nil
	}
	dir, own, shared, unlisted := "", true, false, ""
	switch {
	case inv.conf.SharedDir != "":
		dir = filepath.Join(inv.conf.SharedDir, configdata.ShortID(inv.args.ContainerID))
		seen = exposure{inv.conf.SharedDir, "other pods that mount the sharedDir " + inv.conf.SharedDir + " see it"}
	case h.Engine == netconf.EngineVPP:
		// The notes' VPP layout: every pod's socket in one directory.
		dir, own, shared, unlisted = configdata.DefaultNotesSocketDir, false, true, configdata.DefaultVPPBase
		seen = exposure{configdata.DefaultVPPBase, "other pods that mount " + configdata.DefaultVPPBase + ", as the application notes' pods do, see it"}
	default:
		dir, unlisted = filepath.Join(configdata.DefaultOVSSocketBase, inv.args.ContainerID), configdata.DefaultOVSSocketBase
		seen = exposure{configdata.DefaultOVSSocketBase, "other pods that mount " + configdata.DefaultOVSSocketBase + ", as the application notes' pods do, see it"}
	}
	if l, err = sockdir.Plan(inv.pol, dir, own, name); err != nil {
		return nil, exposure{}, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	l.PodCreates, l.Shared = podCreatesSocket(h), shared
	setUnlisted(l, unlisted)
	return l, seen, nil
}

// podCreatesSocket says whether the pod's app creates the socket: it does
// as the vhost-user server (the switch is the client) or the memif master.
func podCreatesSocket(h *netconf.UserSpaceConf) bool {
	if h.IfType == netconf.IfTypeMemif {
		return h.Memif.Role == netconf.MemifSlave
	}
	return h.Vhost.Mode == netconf.VhostClient
}

// setUnlisted makes dir, a directory of the plugin's own layouts that other
// pods mount, unlistable when ADD prepares l. Only beneath the policy's
// base: the plugin never changes a directory the policy does not give it.
func setUnlisted(l *sockdir.Layout, dir string) {
	if dir == "" {
		return
	}
	if r, err := filepath.Rel(l.Base, dir); err == nil && r != ".." && !strings.HasPrefix(r, "../") {
		l.Unlisted = dir
	}
}

// attachment describes the attachment to the engine.
func attachment(inv *invocation, l *sockdir.Layout) *engine.Attachment {
	return &engine.Attachment{
		ContainerID:  inv.args.ContainerID,
		IfName:       inv.args.IfName,
		Netns:        inv.args.Netns,
		Network:      inv.conf.Name,
		PodNamespace: inv.cargs.PodNamespace,
		PodName:      inv.cargs.PodName,
		PodUID:       inv.cargs.PodUID,
		Host:         inv.conf.Host,
		Layout:       l,
		MTU:          inv.conf.MTU,
	}
}

// phases records how long each step of a verb took, logged at debug level
// so an operator can see where an invocation spends its time.
type phases struct {
	last  time.Time
	attrs []any
}

func newPhases() *phases { return &phases{last: time.Now()} }

func (p *phases) mark(name string) {
	now := time.Now()
	p.attrs = append(p.attrs, slog.Duration(name, now.Sub(p.last)))
	p.last = now
}

func (p *phases) log(log *slog.Logger, verb string) {
	log.Debug(verb+" timings", p.attrs...)
}

// asCNIError makes err a CNI error prefixed with msg: switch-unavailable
// errors become CNI error 50, others 999 (internal); CNI errors are kept as
// they are.
func asCNIError(err error, msg string) error {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		return cniErr
	}
	code := uint(types.ErrInternal)
	if errors.Is(err, engine.ErrUnavailable) {
		code = types.ErrPluginNotAvailable
	}
	return types.NewError(code, fmt.Sprintf("%s: %v", msg, err), "")
}
