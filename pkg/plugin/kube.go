package plugin

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/deviceinfo"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/podapi"
	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// kubeTimeout bounds each API request. ADD fails rather than waits: the
// runtime retries the sandbox. DEL uses delTimeout and never fails on the API.
const (
	kubeTimeout = 5 * time.Second
	delTimeout  = 3 * time.Second
)

// podContext is what ADD learned about the pod from the API server.
type podContext struct {
	client *podapi.Session
	// dir is the host directory of the pod's shared-dir volume ("" when the
	// pod has none), and mappedDir where the pod's containers see it.
	dir       string
	mappedDir string
	// emptyDir says the volume is an emptyDir, which no other pod sees.
	emptyDir bool
}

// lookupPod reads the pod when the configuration has a kubeconfig and the
// runtime named the pod. Without the API, ADD fails (CNI error 11, try again
// later): the socket directory depends on the pod's volumes, and a socket
// put anywhere else is one the pod never finds.
func (p *Plugin) lookupPod(ctx context.Context, inv *invocation) (*podContext, error) {
	if inv.conf.KubeConfig == "" || inv.cargs.PodName == "" || inv.cargs.PodNamespace == "" {
		return nil, nil
	}
	c, err := p.podSession(inv, kubeTimeout)
	if err != nil {
		return nil, kubeError(err)
	}
	pod, err := c.Pod(ctx, inv.cargs.PodNamespace, inv.cargs.PodName, inv.cargs.PodUID, inv.pol.SharedDirVolume, inv.pol.KubeletRoot)
	if err != nil {
		c.Close()
		return nil, kubeError(err)
	}
	pc := &podContext{client: c, dir: pod.Dir, mappedDir: pod.MappedDir, emptyDir: pod.EmptyDir}
	if pc.mappedDir == "" {
		pc.mappedDir = configdata.DefaultMappedDir
	}
	return pc, nil
}

// kubeError maps API failures to CNI codes: transient ones to 11 so the
// runtime retries, the rest to errors that say what to fix.
func kubeError(err error) error {
	code := uint(types.ErrInternal)
	switch {
	case podapi.IsUnreachable(err), podapi.IsConflict(err), podapi.IsNotFound(err):
		code = types.ErrTryAgainLater
	case podapi.IsUIDMismatch(err), podapi.IsForbidden(err), podapi.IsUnauthorized(err), podapi.IsConfig(err):
		code = types.ErrInvalidNetworkConfig
	}
	return types.NewError(code, err.Error(), "")
}

// podSocketLayout is the socket layout in the pod's own volume: the
// socket directly in it (the volume is the pod's; the plugin never removes
// it), checked against the node policy like any shared directory.
func podSocketLayout(inv *invocation, pc *podContext, name string) (*sockdir.Layout, error) {
	l, err := sockdir.Plan(inv.pol, pc.dir, false, name)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("pod %s/%s volume %q: %v", inv.cargs.PodNamespace, inv.cargs.PodName, inv.pol.SharedDirVolume, err), "")
	}
	return l, nil
}

// deviceInfo is the NPWG device-info for the attachment, with the socket
// path as the pod sees it when the pod's volume is known.
func deviceInfo(inv *invocation, l *sockdir.Layout, pc *podContext) *deviceinfo.DeviceInfo {
	p := l.SocketPath()
	if pc != nil && pc.dir != "" {
		p = path.Join(pc.mappedDir, l.SocketName)
	}
	ct := inv.conf.Container
	if ct.IfType == netconf.IfTypeMemif {
		mode := ct.Memif.Mode
		if mode == netconf.MemifInjectPunt {
			mode = deviceinfo.MemifModePunt
		}
		return deviceinfo.NewMemif(ct.Memif.Role, p, mode)
	}
	return deviceinfo.NewVhostUser(ct.Vhost.Mode, p)
}

// removeKubeState undoes what ADD published through Kubernetes: the pod's
// annotation entry (best effort, bounded: DEL must not depend on the API)
// and the device-info file.
func (p *Plugin) removeKubeState(inv *invocation, annotated bool, devInfo string) error {
	if devInfo != "" {
		if err := deviceinfo.Remove(inv.pol, devInfo); err != nil {
			return err
		}
	}
	if !annotated || inv.conf.KubeConfig == "" || inv.cargs.PodName == "" {
		return nil
	}
	c, err := p.podSession(inv, delTimeout)
	if err != nil {
		inv.log.Warn("cannot remove the pod's config-data entry", "error", err)
		return nil
	}
	defer func() {
		inv.log.Debug("Kubernetes API use", "via", c.Via(), "requests", c.Requests())
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), delTimeout)
	defer cancel()
	if err := c.Unpublish(ctx, inv.cargs.PodNamespace, inv.cargs.PodName, inv.args.ContainerID, inv.args.IfName); err != nil {
		inv.log.Warn("cannot remove the pod's config-data entry; it goes with the pod", "error", err)
	}
	return nil
}

// podSession asks the node agent, on its socket in the state directory, or
// else the helper next to the plugin, about the configuration's kubeconfig;
// timeout bounds each API request.
func (p *Plugin) podSession(inv *invocation, timeout time.Duration) (*podapi.Session, error) {
	return podapi.Open(podapi.AgentSocketIn(inv.pol.StateDir), p.KubeHelper, inv.conf.KubeConfig, timeout, p.Stderr)
}
