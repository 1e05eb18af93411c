package plugin

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/podapi"
	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// Transient API failures must make the runtime retry (11); the rest say
// what to fix in the configuration or the cluster (7) or are internal.
func TestKubeErrorCodes(t *testing.T) {
	for _, c := range []struct {
		kind error
		want uint
	}{
		{podapi.ErrUnreachable, types.ErrTryAgainLater},
		{podapi.ErrConflict, types.ErrTryAgainLater},
		{podapi.ErrNotFound, types.ErrTryAgainLater},
		{podapi.ErrUIDMismatch, types.ErrInvalidNetworkConfig},
		{podapi.ErrForbidden, types.ErrInvalidNetworkConfig},
		{podapi.ErrUnauthorized, types.ErrInvalidNetworkConfig},
		{podapi.ErrConfig, types.ErrInvalidNetworkConfig},
		{podapi.ErrAPI, types.ErrInternal},
	} {
		err := kubeError(&podapi.Error{Verb: "get", Namespace: "ns", Name: "pod-a", Kind: c.kind, Err: errors.New("cause")})
		var e *types.Error
		if !errors.As(err, &e) || e.Code != c.want {
			t.Errorf("%v: got %v, want code %d", c.kind, err, c.want)
			continue
		}
		if want := "pod ns/pod-a"; !strings.Contains(e.Msg, want) {
			t.Errorf("%v: message %q does not name %s", c.kind, e.Msg, want)
		}
	}
}

// Device-info carries the pod-side role or mode and, when the pod's volume
// is known, the socket path as the pod sees it.
func TestDeviceInfo(t *testing.T) {
	l := &sockdir.Layout{Base: "/b", Dir: "/b/vol", SocketName: "memif-abc-net1.sock"}
	inv := &invocation{conf: &netconf.NetConf{Container: netconf.UserSpaceConf{IfType: netconf.IfTypeMemif,
		Memif: netconf.MemifConf{Role: "slave", Mode: netconf.MemifInjectPunt}}}}
	d := deviceInfo(inv, l, &podContext{dir: "/b/vol", mappedDir: "/var/lib/cni/usrspcni"})
	if d.Type != "memif" || d.Memif == nil || d.Memif.Role != "slave" || d.Memif.Mode != "punt" ||
		d.Memif.Path != "/var/lib/cni/usrspcni/memif-abc-net1.sock" {
		t.Errorf("memif device-info %+v %+v", d, d.Memif)
	}
	inv.conf.Container = netconf.UserSpaceConf{IfType: netconf.IfTypeVhostUser, Vhost: netconf.VhostConf{Mode: "server"}}
	d = deviceInfo(inv, l, nil)
	if d.Type != "vhost-user" || d.VhostUser == nil || d.VhostUser.Mode != "server" || d.VhostUser.Path != "/b/vol/memif-abc-net1.sock" {
		t.Errorf("vhost-user device-info without a pod volume %+v %+v", d, d.VhostUser)
	}
}
