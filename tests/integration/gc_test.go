package integration

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// TestGC keeps the attachments listed in cni.dev/valid-attachments and
// removes the rest of this network's: ports, records, sockets and IPs, even
// for an attachment whose record was lost. Another network's are untouched.
func TestGC(t *testing.T) {
	conf := ovsExample("br-gc")
	conf["ipam"] = hostLocal("10.59.0.0/24")
	list := confList(t, "1.1.0", "gcnet", conf)
	otherList := confList(t, "1.1.0", "gcother", ovsExample("br-gc"))
	keep, drop, lost, other := newPod(t), newPod(t), newPod(t), newPod(t)
	for _, p := range []*pod{keep, drop, lost} {
		if _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.cni.AddNetworkList(ctx(), otherList, other.rt("net1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(h.stateDir, "attachments", lost.id+"@net1.json")); err != nil {
		t.Fatal(err)
	}
	before := len(ipamAllocations(t))

	gc := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: keep.id, IfName: "net1"}}}
	if err := h.cni.GCNetworkList(ctx(), list, gc); err != nil {
		t.Fatalf("GC: %v", err)
	}
	for _, p := range []*pod{drop, lost} {
		if r := interfacesOf(t, p.id); len(r) != 0 {
			t.Errorf("GC left the port of %s: %v", p.id[:12], r)
		}
		sock := filepath.Join(defaultSocketBase, p.id, p.id[:12]+"-net1")
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("GC left socket path %s (%v)", sock, err)
		}
	}
	assertClean(t, drop, filepath.Join(defaultSocketBase, drop.id))
	if after := len(ipamAllocations(t)); after != before-2 {
		t.Errorf("IPAM allocations %d -> %d, want two released", before, after)
	}
	for _, p := range []*pod{keep, other} {
		if len(interfacesOf(t, p.id)) != 1 {
			t.Errorf("GC removed %s, which it had to keep", p.id[:12])
		}
	}
	for _, c := range []struct {
		l *libcni.NetworkConfigList
		p *pod
	}{{list, keep}, {otherList, other}, {list, lost}} {
		if err := h.cni.DelNetworkList(ctx(), c.l, c.p.rt("net1")); err != nil {
			t.Errorf("DEL: %v", err)
		}
	}
	// The lost attachment's directory was not known to be the plugin's, so
	// GC only removed its files; DEL (with the config) removes the rest.
	assertClean(t, keep, filepath.Join(defaultSocketBase, keep.id))
	assertClean(t, lost, filepath.Join(defaultSocketBase, lost.id))
}

// TestConcurrentAddDel runs eight ADDs at once onto a bridge that does not
// exist yet, then eight DELs at once: no errors, no duplicate bridge, and
// nothing left at the end.
func TestConcurrentAddDel(t *testing.T) {
	const n = 8
	list := confList(t, "1.0.0", "conc", ovsExample("br-conc"))
	pods := newPods(t, n)
	run := func(verb string, f func(p *pod) error) { concurrently(t, verb, pods, f) }
	run("ADD", func(p *pod) error { _, err := h.cni.AddNetworkList(ctx(), list, p.rt("net1")); return err })
	if rows := findRows(t, "Bridge", "name=br-conc", "ports"); len(rows) != 1 || len(strings.Fields(rows[0]["ports"])) != n+1 {
		t.Fatalf("want one bridge with %d ports plus its local port, got %v", n, rows)
	}
	run("DEL", func(p *pod) error { return h.cni.DelNetworkList(ctx(), list, p.rt("net1")) })
	for _, p := range pods {
		assertClean(t, p, filepath.Join(defaultSocketBase, p.id))
	}
	if bridgeExists(t, "br-conc") {
		t.Errorf("br-conc left behind")
	}
}

// TestLongSocketPath uses a sharedDir so deep that the socket path exceeds
// the 107-byte unix socket limit: the switch gets a short link to the same
// directory, the result reports it, and DEL removes the link.
func TestLongSocketPath(t *testing.T) {
	deep := filepath.Join(h.shared, strings.Repeat("d", 60), strings.Repeat("e", 30))
	conf := ovsExample("br-long")
	conf["sharedDir"] = deep
	list := confList(t, "1.1.0", "long", conf)
	p := newPod(t)
	rt := p.rt("net1")
	res, err := h.cni.AddNetworkList(ctx(), list, rt)
	if err != nil {
		t.Fatal(err)
	}
	realDir := filepath.Join(deep, p.id[:12])
	if real := filepath.Join(realDir, p.id[:12]+"-net1"); len(real) <= 107 {
		t.Fatalf("test setup: %s is only %d bytes", real, len(real))
	}
	r, err := types100.GetResult(res)
	if err != nil {
		t.Fatal(err)
	}
	short := r.Interfaces[0].SocketPath
	if len(short) > 107 || !strings.HasPrefix(short, h.shortDir) {
		t.Fatalf("socketPath %q (%d bytes): want a short path under %s", short, len(short), h.shortDir)
	}
	if got := mapValue(interfacesOf(t, p.id)[0]["options"], "vhost-server-path"); got != short {
		t.Errorf("switch connects to %q, want the short path %q", got, short)
	}
	if target, err := filepath.EvalSymlinks(filepath.Dir(short)); err != nil || target != realDir {
		t.Errorf("short link resolves to %q (%v), want %s", target, err, realDir)
	}
	readConfigData(t, realDir, p.id, "net1")
	if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Dir(short)); !os.IsNotExist(err) {
		t.Errorf("short link %s left behind", filepath.Dir(short))
	}
	assertClean(t, p, realDir)
}

// TestVhostGroup gives the socket directory (and a server-mode socket) to
// vhost.group only: setgid, the group may enter and read it but not write,
// since the switch creates the socket. The base directory keeps its owner,
// group and mode, except that others may no longer list it.
func TestVhostGroup(t *testing.T) {
	grp, err := user.LookupGroup("daemon")
	if err != nil {
		t.Fatalf("group daemon: %v", err)
	}
	gid, _ := strconv.Atoi(grp.Gid)
	baseBefore, err := os.Stat(defaultSocketBase)
	if err != nil {
		t.Fatal(err)
	}
	list := confList(t, "1.0.0", "group", map[string]any{"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
		"vhost": map[string]any{"group": "daemon"}, "bridge": map[string]any{"bridgeName": "br-grp"}}})
	p := newPod(t)
	attach(t, list, p, "net1")
	dir := filepath.Join(defaultSocketBase, p.id)
	for path, want := range map[string]os.FileMode{dir: 0o750 | os.ModeSetgid | os.ModeDir, filepath.Join(dir, p.id[:12]+"-net1"): 0o660 | os.ModeSocket} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want || fi.Sys().(*syscall.Stat_t).Gid != uint32(gid) {
			t.Errorf("%s: mode %v gid %d, want %v gid %d", path, fi.Mode(), fi.Sys().(*syscall.Stat_t).Gid, want, gid)
		}
	}
	baseAfter, err := os.Stat(defaultSocketBase)
	before, after := baseBefore.Sys().(*syscall.Stat_t), baseAfter.Sys().(*syscall.Stat_t)
	if err != nil || baseAfter.Mode() != baseBefore.Mode()&^0o044 || after.Gid != before.Gid || after.Uid != before.Uid {
		t.Errorf("the shared base directory changed from %v %d:%d to %v %d:%d, want only its read bits for group and others gone",
			baseBefore.Mode(), before.Uid, before.Gid, baseAfter.Mode(), after.Uid, after.Gid)
	}
}

// TestMACSources: the runtime's mac capability wins over the pod's cni-args
// and CNI_ARGS, and the chosen MAC is in the result and the config data.
func TestMACSources(t *testing.T) {
	conf := ovsExample("br-mac")
	conf["capabilities"] = map[string]any{"mac": true}
	conf["args"] = map[string]any{"cni": map[string]any{"mac": "02:00:00:00:00:02"}}
	list := confList(t, "1.0.0", "mac", conf)
	for _, tc := range []struct {
		name, capMAC, want string
	}{
		{"capability", "02:00:00:00:00:01", "02:00:00:00:00:01"},
		{"cni-args", "", "02:00:00:00:00:02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPod(t)
			rt := p.rt("net1")
			rt.Args = append(rt.Args, [2]string{"MAC", "02:00:00:00:00:03"})
			if tc.capMAC != "" {
				rt.CapabilityArgs = map[string]any{"mac": tc.capMAC}
			}
			res, err := h.cni.AddNetworkList(ctx(), list, rt)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
					t.Error(err)
				}
			})
			r, _ := types100.GetResult(res)
			if r.Interfaces[0].Mac != tc.want {
				t.Errorf("result MAC %q, want %q", r.Interfaces[0].Mac, tc.want)
			}
			cd := readConfigData(t, filepath.Join(defaultSocketBase, p.id), p.id, "net1")
			if cd.IPResult.Interfaces[0].Mac != tc.want {
				t.Errorf("config data MAC %q, want %q", cd.IPResult.Interfaces[0].Mac, tc.want)
			}
		})
	}
}
