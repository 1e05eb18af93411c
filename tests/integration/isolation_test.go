package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/userspace-cni/userspace/pkg/policy"
)

// Isolation between pods, tried by real non-root processes against the real
// switch: "another pod" is this test binary re-executed, dropping to an
// unprivileged uid before it touches anything (no capabilities left, so no
// CAP_DAC_OVERRIDE), doing what a process in a pod that mounts the shared
// directory could do.

// otherPodEnv carries a podSpec to the re-executed test binary.
const otherPodEnv = "USERSPACE_TEST_OTHER_POD"

// Unprivileged identities: an attacker in another pod, and a pod's own
// non-root app (in vhost.group's group when the test sets one).
const (
	attackerUID = 65534 // nobody
	appUID      = 65533
)

type podOp struct {
	Op   string `json:"op"` // list, create, bind, unlink, rename, connect, connectPacket
	Path string `json:"path"`
	// Wait, for bind, is how long to wait for a connection (the switch
	// connecting to the socket); 0 closes it at once.
	Wait time.Duration `json:"wait,omitempty"`
}

type podSpec struct {
	UID    int     `json:"uid"`
	GID    int     `json:"gid"`
	Groups []int   `json:"groups"`
	Ops    []podOp `json:"ops"`
}

type opResult struct {
	Err       string   `json:"err"` // "" or the errno's name
	Names     []string `json:"names,omitempty"`
	Connected bool     `json:"connected,omitempty"`
}

func init() {
	// Runs before TestMain: the re-executed binary is only "another pod".
	if spec := os.Getenv(otherPodEnv); spec != "" {
		os.Exit(otherPod(spec))
	}
}

func otherPod(specJSON string) int {
	var spec podSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// Groups, then gid, then uid: after setuid the process may no longer
	// change the others. Go applies these to every thread.
	if err := syscall.Setgroups(spec.Groups); err != nil {
		fmt.Fprintln(os.Stderr, "setgroups:", err)
		return 2
	}
	if err := syscall.Setgid(spec.GID); err != nil {
		fmt.Fprintln(os.Stderr, "setgid:", err)
		return 2
	}
	if err := syscall.Setuid(spec.UID); err != nil {
		fmt.Fprintln(os.Stderr, "setuid:", err)
		return 2
	}
	if os.Geteuid() != spec.UID || os.Getegid() != spec.GID {
		fmt.Fprintln(os.Stderr, "identity not dropped")
		return 2
	}
	var out []opResult
	for _, op := range spec.Ops {
		out = append(out, doOp(op))
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

func doOp(op podOp) opResult {
	var r opResult
	var err error
	switch op.Op {
	case "list":
		var entries []os.DirEntry
		entries, err = os.ReadDir(op.Path)
		for _, e := range entries {
			r.Names = append(r.Names, e.Name())
		}
	case "create":
		var f *os.File
		if f, err = os.OpenFile(op.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666); err == nil {
			f.Close()
			_ = os.Remove(op.Path)
		}
	case "bind":
		var ln *net.UnixListener
		if ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: op.Path, Net: "unix"}); err == nil {
			if op.Wait > 0 {
				_ = ln.SetDeadline(time.Now().Add(op.Wait))
				if c, aerr := ln.Accept(); aerr == nil {
					r.Connected = true
					c.Close()
				}
			}
			ln.Close() // removes the socket file it created
		}
	case "unlink":
		err = unix.Unlink(op.Path)
	case "rename":
		if err = os.Rename(op.Path, op.Path+".moved"); err == nil {
			_ = os.Rename(op.Path+".moved", op.Path)
		}
	case "connect", "connectPacket":
		network := "unix"
		if op.Op == "connectPacket" {
			network = "unixpacket"
		}
		var c net.Conn
		if c, err = net.DialTimeout(network, op.Path, 2*time.Second); err == nil {
			c.Close()
		}
	default:
		err = fmt.Errorf("unknown op %q", op.Op)
	}
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			r.Err = unix.ErrnoName(errno)
		} else {
			r.Err = err.Error()
		}
	}
	return r
}

// asPod runs ops as uid (gid, supplementary groups) in a separate process
// and returns one result per op.
func asPod(t *testing.T, uid, gid int, groups []int, ops ...podOp) []opResult {
	t.Helper()
	spec, _ := json.Marshal(podSpec{UID: uid, GID: gid, Groups: append([]int{}, groups...), Ops: ops})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), otherPodEnv+"="+string(spec))
	cmd.Dir = "/"
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("running as uid %d: %v\n%s", uid, err, errOut.String())
	}
	var res []opResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res) != len(ops) {
		t.Fatalf("results as uid %d: %v: %q", uid, err, out.String())
	}
	return res
}

// attacker runs ops as a process of another pod: nobody, no groups.
func attacker(t *testing.T, ops ...podOp) []opResult {
	t.Helper()
	return asPod(t, attackerUID, attackerUID, nil, ops...)
}

// wantDenied checks each op was refused by the kernel's permission checks.
func wantDenied(t *testing.T, who string, ops []podOp, res []opResult) {
	t.Helper()
	for i, r := range res {
		if r.Err != "EACCES" && r.Err != "EPERM" {
			t.Errorf("%s: %s %s: got %q (entries %v), want it refused (EACCES/EPERM)", who, ops[i].Op, ops[i].Path, r.Err, r.Names)
		}
	}
}

// wantAllowed checks each op succeeded.
func wantAllowed(t *testing.T, who string, ops []podOp, res []opResult) {
	t.Helper()
	for i, r := range res {
		if r.Err != "" {
			t.Errorf("%s: %s %s: %s, want it to succeed", who, ops[i].Op, ops[i].Path, r.Err)
		}
	}
}

func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode() & (os.ModePerm | os.ModeSticky | os.ModeSetgid)
}

func daemonGID(t *testing.T) int {
	t.Helper()
	g, err := user.LookupGroup("daemon")
	if err != nil {
		t.Fatalf("group daemon: %v", err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

// addNotes runs ADD of the notes' OVS-DPDK configuration (with host.vhost
// overrides), registers its DEL, and returns the per-pod directory and what
// the plugin logged.
func addNotes(t *testing.T, p *pod, vhost map[string]any) (string, string) {
	t.Helper()
	host := map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser"}
	if vhost != nil {
		host["vhost"] = vhost
	}
	stdin, _ := json.Marshal(map[string]any{"cniVersion": "0.3.0", "type": "userspace", "host": host})
	inv := runBinary(t, "ADD", stdin, p, "net1")
	if inv.exit != 0 {
		t.Fatalf("ADD: exit %d: %s %s", inv.exit, inv.stdout, inv.stderr)
	}
	dir := filepath.Join("/var/lib/cni/vhostuser", p.id)
	t.Cleanup(func() {
		if inv := runBinary(t, "DEL", stdin, p, "net1"); inv.exit != 0 {
			t.Errorf("DEL: exit %d: %s %s", inv.exit, inv.stdout, inv.stderr)
		}
		assertClean(t, p, dir)
	})
	return dir, string(inv.stderr)
}

// TestIsolationNotesLayout: the application notes' layout, where every pod
// mounts /var/lib/cni/vhostuser. Another pod cannot list it, so it cannot
// find other pods' directories (named by 64 random hex digits); even
// knowing the id, it cannot put anything in a directory whose socket the
// switch creates (the notes' default, OVS as server), nor remove or replace
// a pod's socket. The pod's own non-root app still connects (server mode) or
// listens and gets the switch's connection (client mode). The plugin warns
// that the directory is visible to other pods.
func TestIsolationNotesLayout(t *testing.T) {
	base := "/var/lib/cni/vhostuser"
	t.Run("server", func(t *testing.T) {
		p := newPod(t)
		dir, logs := addNotes(t, p, nil)
		sock := filepath.Join(dir, p.id[:12]+"-net1")
		checkSharedWarning(t, logs, base)
		ops := []podOp{{Op: "list", Path: base}, {Op: "create", Path: filepath.Join(dir, p.id[:12]+"-net2")},
			{Op: "bind", Path: filepath.Join(dir, "claim")}, {Op: "unlink", Path: sock}, {Op: "rename", Path: sock},
			{Op: "create", Path: filepath.Join(dir, "configData-x.json")}}
		wantDenied(t, "another pod", ops, attacker(t, ops...))
		if m := modeOf(t, dir); m&0o022 != 0 {
			t.Errorf("per-pod directory %s is %v: writable by others while the switch creates the socket", dir, m)
		}
		app := []podOp{{Op: "connect", Path: sock}}
		wantAllowed(t, "the pod's app", app, asPod(t, appUID, appUID, nil, app...))
	})
	t.Run("client", func(t *testing.T) {
		p := newPod(t)
		dir, logs := addNotes(t, p, map[string]any{"mode": "client"})
		sock := filepath.Join(dir, p.id[:12]+"-net1")
		checkSharedWarning(t, logs, base)
		ops := []podOp{{Op: "list", Path: base}}
		wantDenied(t, "another pod", ops, attacker(t, ops...))
		// The pod's non-root app is the vhost-user server: it creates the
		// socket and the switch connects to it.
		app := []podOp{{Op: "bind", Path: sock, Wait: 30 * time.Second}}
		res := asPod(t, appUID, appUID, nil, app...)
		wantAllowed(t, "the pod's app", app, res)
		if !res[0].Connected {
			t.Errorf("ovs-vswitchd did not connect to the pod app's socket %s", sock)
		}
	})
}

// TestIsolationVhostGroup: with vhost.group, the per-pod directory is the
// group's (setgid, so the app's socket is too) and nobody else's: another
// pod that knows the id can neither claim the socket name nor connect, in
// client and server mode; an app in the group can.
func TestIsolationVhostGroup(t *testing.T) {
	gid := daemonGID(t)
	t.Run("client", func(t *testing.T) {
		p := newPod(t)
		dir, _ := addNotes(t, p, map[string]any{"mode": "client", "group": "daemon"})
		sock := filepath.Join(dir, p.id[:12]+"-net1")
		if m := modeOf(t, dir); m&^os.ModeSticky != 0o770|os.ModeSetgid || statGID(t, dir) != uint32(gid) {
			t.Errorf("per-pod directory %s: mode %v gid %d, want setgid 0770 gid %d", dir, m, statGID(t, dir), gid)
		}
		ops := []podOp{{Op: "bind", Path: sock}, {Op: "list", Path: dir}, {Op: "create", Path: filepath.Join(dir, "x")}}
		wantDenied(t, "another pod", ops, attacker(t, ops...))
		app := []podOp{{Op: "bind", Path: sock, Wait: 30 * time.Second}}
		res := asPod(t, appUID, appUID, []int{gid}, app...)
		wantAllowed(t, "the pod's app in the group", app, res)
		if !res[0].Connected {
			t.Errorf("ovs-vswitchd did not connect to the pod app's socket %s", sock)
		}
	})
	t.Run("server", func(t *testing.T) {
		p := newPod(t)
		dir, _ := addNotes(t, p, map[string]any{"group": "daemon"})
		sock := filepath.Join(dir, p.id[:12]+"-net1")
		if m := modeOf(t, sock); m != 0o660 || statGID(t, sock) != uint32(gid) {
			t.Errorf("socket %s: mode %v gid %d, want 0660 gid %d", sock, m, statGID(t, sock), gid)
		}
		ops := []podOp{{Op: "connect", Path: sock}, {Op: "list", Path: dir}, {Op: "unlink", Path: sock}}
		wantDenied(t, "another pod", ops, attacker(t, ops...))
		app := []podOp{{Op: "connect", Path: sock}}
		wantAllowed(t, "the pod's app in the group", app, asPod(t, appUID, appUID, []int{gid}, app...))
	})
}

// TestIsolationVPPNotesLayout: the notes' VPP layout, where every pod mounts
// /var/run/vpp/cni and all memif sockets are in its "shared" directory.
// Another pod lists neither and cannot create sockets there; the pod's own
// non-root app reaches its socket, and with vhost.group only the group does.
func TestIsolationVPPNotesLayout(t *testing.T) {
	gid := daemonGID(t)
	for _, group := range []string{"", "daemon"} {
		t.Run("group="+group, func(t *testing.T) {
			conf := vppExample()
			delete(conf, "ipam")
			if group != "" {
				conf["host"].(map[string]any)["vhost"] = map[string]any{"group": group}
			}
			conf["cniVersion"], conf["name"], conf["type"] = "1.0.0", "memif-iso", "userspace"
			stdin, _ := json.Marshal(conf)
			p := newPod(t)
			inv := runBinary(t, "ADD", stdin, p, "net1")
			if inv.exit != 0 {
				t.Fatalf("ADD: exit %d: %s %s", inv.exit, inv.stdout, inv.stderr)
			}
			t.Cleanup(func() {
				if inv := runBinary(t, "DEL", stdin, p, "net1"); inv.exit != 0 {
					t.Errorf("DEL: exit %d: %s %s", inv.exit, inv.stdout, inv.stderr)
				}
				assertVPPClean(t, p, "net1")
			})
			checkSharedWarning(t, string(inv.stderr), vppBase)
			sock := filepath.Join(vppSharedDir, "memif-"+p.id[:12]+"-net1.sock")
			ops := []podOp{{Op: "list", Path: vppBase}, {Op: "list", Path: vppSharedDir},
				{Op: "create", Path: filepath.Join(vppSharedDir, "memif-claim.sock")}, {Op: "unlink", Path: sock}}
			if group != "" {
				ops = append(ops, podOp{Op: "connectPacket", Path: sock})
			}
			wantDenied(t, "another pod", ops, attacker(t, ops...))
			app := []podOp{{Op: "connectPacket", Path: sock}, {Op: "list", Path: filepath.Join(vppBase, p.id)}}
			var groups []int
			if group != "" {
				groups = []int{gid}
			}
			wantAllowed(t, "the pod's app", app, asPod(t, appUID, appUID, groups, app...))
		})
	}
}

// TestIsolationSharedDir: a sharedDir the plugin creates is traversable but
// not listable by others, so other pods that mount it cannot find a pod's
// directory; the per-pod directory lets the pod's non-root app create its
// socket (client mode) without letting others remove it.
func TestIsolationSharedDir(t *testing.T) {
	top, err := os.MkdirTemp("/tmp", "usp-iso-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o711); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(top, "base") // the policy's entry, created by the plugin
	shared := filepath.Join(base, "pods")
	withPolicy(t, func(p *policy.Policy) { p.SharedDirs = append(p.SharedDirs, base) })
	conf := ovsExample("br-iso")
	conf["sharedDir"] = shared
	list := confList(t, "1.0.0", "iso-shared", conf)
	p := newPod(t)
	rt := p.rt("net1")
	if _, err := h.cni.AddNetworkList(ctx(), list, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	dir := filepath.Join(shared, p.id[:12])
	t.Cleanup(func() {
		if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
			t.Errorf("DEL: %v", err)
		}
		assertClean(t, p, dir)
	})
	for _, d := range []string{base, shared} {
		if m := modeOf(t, d); m != 0o711 {
			t.Errorf("%s created with mode %v, want 0711 (traversable, not listable)", d, m)
		}
	}
	sock := filepath.Join(dir, p.id[:12]+"-net1")
	ops := []podOp{{Op: "list", Path: base}, {Op: "list", Path: shared}}
	wantDenied(t, "another pod", ops, attacker(t, ops...))
	// The app's socket, once it listens, is not the attacker's to remove.
	app := []podOp{{Op: "bind", Path: sock, Wait: 30 * time.Second}}
	res := asPod(t, appUID, appUID, nil, app...)
	wantAllowed(t, "the pod's app", app, res)
	if !res[0].Connected {
		t.Errorf("ovs-vswitchd did not connect to the pod app's socket %s", sock)
	}
	if m := modeOf(t, dir); m != 0o777|os.ModeSticky {
		t.Errorf("per-pod directory %s mode %v, want sticky 0777 (the app creates its socket)", dir, m)
	}
}

// checkSharedWarning checks the plugin warned, on stderr, that the
// attachment's directory is visible to other pods, naming what they mount.
func checkSharedWarning(t *testing.T, logs, visible string) {
	t.Helper()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "other pods") || !strings.Contains(logs, visible) {
		t.Errorf("no warning naming %s as visible to other pods; stderr:\n%s", visible, logs)
	}
}

// TestStrictIsolation: under the node policy's strict isolation, ADD
// refuses every layout other pods can see (the notes' OVS-DPDK and VPP
// layouts, a sharedDir), naming the policy field, before anything is
// created: no directory, port, VPP interface, record or address is left,
// and the DEL a runtime sends after a failed ADD succeeds.
func TestStrictIsolation(t *testing.T) {
	withPolicy(t, func(p *policy.Policy) { p.Isolation = policy.IsolationStrict })
	ipam := hostLocal("10.59.0.0/24")
	for _, tc := range []struct {
		name string
		conf map[string]any
		dir  func(p *pod) string
		vpp  bool
	}{
		{"notes OVS-DPDK", map[string]any{"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser"}, "ipam": ipam},
			func(p *pod) string { return filepath.Join("/var/lib/cni/vhostuser", p.id) }, false},
		{"notes OVS-DPDK client", map[string]any{"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
			"vhost": map[string]any{"mode": "client"}}, "ipam": ipam},
			func(p *pod) string { return filepath.Join("/var/lib/cni/vhostuser", p.id) }, false},
		{"sharedDir", map[string]any{"sharedDir": h.shared, "host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
			"vhost": map[string]any{"mode": "client"}}, "ipam": ipam},
			func(p *pod) string { return filepath.Join(h.shared, p.id[:12]) }, false},
		{"notes VPP", vppExample(), func(p *pod) string { return vppSharedDir }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			allocs := len(ipamAllocations(t))
			before := vppSnapshot(t)
			conf := tc.conf
			conf["cniVersion"], conf["name"], conf["type"] = "1.0.0", "strict", "userspace"
			stdin, _ := json.Marshal(conf)
			p := newPod(t)
			inv := runBinary(t, "ADD", stdin, p, "net1")
			if inv.exit == 0 {
				t.Cleanup(func() { runBinary(t, "DEL", stdin, p, "net1") })
			}
			e := cniErrorOut(t, inv)
			dir := tc.dir(p)
			if e.Code != 7 || !strings.Contains(e.Msg, `isolation "strict"`) || !strings.Contains(e.Msg, dir) {
				t.Errorf("error %d %q, want code 7 naming the policy's isolation and %s", e.Code, e.Msg, dir)
			}
			if n := len(ipamAllocations(t)); n != allocs {
				t.Errorf("IPAM allocations changed from %d to %d", allocs, n)
			}
			if del := runBinary(t, "DEL", stdin, p, "net1"); del.exit != 0 {
				t.Errorf("DEL after the refused ADD: exit %d: %s %s", del.exit, del.stdout, del.stderr)
			}
			if tc.vpp {
				assertVPPClean(t, p, "net1")
				if after := vppSnapshot(t); after != before {
					t.Errorf("VPP changed:\n%s\nwas:\n%s", after, before)
				}
				return
			}
			assertClean(t, p, dir)
		})
	}
}
