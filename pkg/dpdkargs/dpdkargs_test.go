package dpdkargs

import (
	"reflect"
	"strings"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
)

func vhost(ifName, mode, sock string) configdata.Attachment {
	return configdata.Attachment{
		ConfigData: configdata.ConfigData{IfName: ifName, Config: netconf.UserSpaceConf{IfType: netconf.IfTypeVhostUser, Vhost: netconf.VhostConf{Mode: mode}}},
		SocketPath: sock,
	}
}

func memif(ifName string, m netconf.MemifConf, sock string) configdata.Attachment {
	return configdata.Attachment{
		ConfigData: configdata.ConfigData{IfName: ifName, Config: netconf.UserSpaceConf{IfType: netconf.IfTypeMemif, Memif: m}},
		SocketPath: sock,
	}
}

func TestVDev(t *testing.T) {
	withMAC := vhost("net1", "client", "/vhu/a/b")
	withMAC.IPResult = &types100.Result{Interfaces: []*types100.Interface{nil, {Name: "other", Mac: "02:00:00:00:00:09"}, {Name: "net1", Mac: "02:00:00:00:00:01"}}}
	for _, tt := range []struct {
		name string
		n    int
		a    configdata.Attachment
		want string
	}{
		// The notes' OVS pods: OVS is the server, the app the client.
		{"vhost-user client", 0, vhost("net1", "client", "/vhu/3f9a/3f9a1c2b4d5e-net1"), "virtio_user0,path=/vhu/3f9a/3f9a1c2b4d5e-net1"},
		{"vhost-user default mode", 1, vhost("net2", "", "/x/s"), "virtio_user1,path=/x/s"},
		{"vhost-user server", 2, vhost("net3", "server", "/x/s"), "virtio_user2,path=/x/s,server=1"},
		{"vhost-user with the runtime's MAC", 0, withMAC, "virtio_user0,path=/vhu/a/b,mac=02:00:00:00:00:01"},
		{"memif slave", 0, memif("net1", netconf.MemifConf{Role: "slave", Mode: "ethernet"}, "/run/m.sock"),
			"net_memif0,role=client,socket=/run/m.sock,socket-abstract=no"},
		{"memif master with extensions", 3, memif("net1", netconf.MemifConf{Role: "master", RingSize: 2048, BufferSize: 4096, Secret: "s3cret", MAC: "02:fe:00:00:00:02"}, "/run/m.sock"),
			"net_memif3,role=server,socket=/run/m.sock,socket-abstract=no,rsize=11,bsize=4096,secret=s3cret,mac=02:fe:00:00:00:02"},
	} {
		got, err := VDev(tt.n, &tt.a)
		if err != nil || got != tt.want {
			t.Errorf("%s: VDev = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestVDevRefuses(t *testing.T) {
	badMAC := vhost("net1", "client", "/x/s")
	badMAC.IPResult = &types100.Result{Interfaces: []*types100.Interface{{Name: "net1", Mac: "ff:ff:ff:ff:ff:ff"}}}
	for _, tt := range []struct {
		a    configdata.Attachment
		want string
	}{
		{vhost("net1", "client", "/x,y/s"), `interface net1: socket path "/x,y/s": DPDK device arguments cannot carry ','`},
		{vhost("net1", "client", "/x/s=1"), `cannot carry '='`},
		{vhost("net1", "client", "/x y/s"), `cannot carry ' '`},
		{vhost("net1", "bogus", "/x/s"), `config.vhost.mode "bogus"`},
		{memif("net1", netconf.MemifConf{Role: "peer"}, "/x/s"), `config.memif.role "peer"`},
		{memif("net1", netconf.MemifConf{Mode: "ip"}, "/x/s"), `config.memif.mode "ip": DPDK's memif driver supports only "ethernet"`},
		{memif("net1", netconf.MemifConf{RingSize: 1000}, "/x/s"), `config.memif.ringSize 1000`},
		{memif("net1", netconf.MemifConf{Secret: "a,b"}, "/x/s"), `config.memif.secret "a,b"`},
		{memif("net1", netconf.MemifConf{MAC: "zz"}, "/x/s"), `MAC "zz"`},
		{badMAC, `MAC "ff:ff:ff:ff:ff:ff"`},
		{configdata.Attachment{ConfigData: configdata.ConfigData{IfName: "net1"}, SocketPath: "/x"}, `config.iftype ""`},
	} {
		got, err := VDev(0, &tt.a)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("VDev(%+v) = %q, %v; want an error with %q", tt.a, got, err, tt.want)
		}
	}
}

func TestEAL(t *testing.T) {
	atts := []configdata.Attachment{vhost("net1", "client", "/a"), memif("net2", netconf.MemifConf{}, "/b")}
	got, err := EAL(atts)
	want := []string{"--vdev=virtio_user0,path=/a", "--vdev=net_memif1,role=client,socket=/b,socket-abstract=no"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("EAL = %q, %v", got, err)
	}
	atts[1].SocketPath = "/b,c"
	if _, err := EAL(atts); err == nil {
		t.Error("EAL accepted a bad socket path")
	}
}

func TestInsert(t *testing.T) {
	eal := []string{"--vdev=a", "--vdev=b"}
	for _, tt := range []struct{ argv, want []string }{
		{[]string{"testpmd", "-l", "0,1", "--", "--auto-start"}, []string{"testpmd", "-l", "0,1", "--vdev=a", "--vdev=b", "--", "--auto-start"}},
		{[]string{"l3fwd", "--", "-p", "0x1", "--", "x"}, []string{"l3fwd", "--vdev=a", "--vdev=b", "--", "-p", "0x1", "--", "x"}},
		{[]string{"app", "-l", "0"}, []string{"app", "-l", "0", "--vdev=a", "--vdev=b"}},
		{[]string{"app"}, []string{"app", "--vdev=a", "--vdev=b"}},
		{nil, nil},
	} {
		if got := Insert(tt.argv, eal); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Insert(%q) = %q, want %q", tt.argv, got, tt.want)
		}
	}
}
