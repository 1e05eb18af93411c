package plugin_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/plugin"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/state"
)

// A plugin process started by its own IPAM delegation refuses every verb at
// once, before it reads anything or takes any lock.
func TestRefusesRecursion(t *testing.T) {
	e := newEnv(t)
	getenv := func(k string) string {
		switch k {
		case policy.PathEnv:
			return e.policyPath
		case "USERSPACE_CNI_DELEGATED":
			return "ADD"
		}
		return ""
	}
	p := &plugin.Plugin{Getenv: getenv, Stderr: e.stderr, OpenEngine: e.sw.open, KubeHelper: kubeHelper}
	id := containerID("recursion")
	_, err := run(t, p.Add, e.args(id, "net1", e.conf("1.0.0")))
	if cniCode(err) != uint(types.ErrInvalidNetworkConfig) || !strings.Contains(err.Error(), "own IPAM delegation") {
		t.Fatalf("ADD started by its own IPAM = %v, want a refusal", err)
	}
	if e.sw.opens != 0 || exists(e.stateDir) {
		t.Errorf("the refused ADD touched the switch (%d opens) or the state directory", e.sw.opens)
	}
}

// The IPAM plugin gets the verb's own CNI variables and the delegation mark.
func TestIPAMEnvironment(t *testing.T) {
	e := newEnv(t)
	id := containerID("ipam-env")
	e.add(id, "net1", e.conf("1.0.0", withIPAM("recording-ipam")))
	calls := ipamCalls(t)
	if len(calls) != 1 || calls[0] != "ADD|"+id+"|net1" {
		t.Errorf("IPAM calls %v, want one ADD of %s net1", calls, id[:12])
	}
}

// A NAD that fixes the socket name, used twice by one pod: the second ADD is
// refused naming the first attachment, and neither its rollback nor its DEL
// removes the first one's socket or files.
func TestSecondAttachmentOnOneSocket(t *testing.T) {
	e := newEnv(t)
	id := containerID("one-socket")
	conf := e.conf("1.0.0", func(c map[string]any) {
		c["host"].(map[string]any)["vhost"] = map[string]any{"mode": "client", "socketfile": "fixed.sock"}
	})
	e.add(id, "net1", conf)
	sock := filepath.Join(e.sockDir(id), "fixed.sock")
	makeSocket(t, sock) // the pod's app, listening
	_, err := run(t, e.p.Add, e.args(id, "net2", conf))
	if err == nil || !strings.Contains(err.Error(), "interface net1") || !strings.Contains(err.Error(), sock) {
		t.Fatalf("second ADD on one socket = %v, want a refusal naming %s and net1", err, sock)
	}
	if len(e.sw.callsOf("Attach")) != 1 {
		t.Errorf("the refused ADD reached the switch")
	}
	if _, err := run(t, e.p.Del, e.args(id, "net2", conf)); err != nil {
		t.Fatalf("DEL of the refused attachment: %v", err)
	}
	for _, d := range e.sw.callsOf("Detach") {
		if d.att.Layout != nil {
			t.Errorf("DEL of the refused attachment handed the engine the socket %s", d.att.Layout.SocketPath())
		}
	}
	if !exists(sock) || !exists(e.configDataPath(id, "net1")) {
		t.Fatalf("the refused attachment's ADD or DEL removed net1's socket or config data")
	}
	if r := e.loadRecord(id, "net1"); r == nil {
		t.Fatal("net1's record is gone")
	}
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
		t.Fatal(err)
	}
	if exists(sock) || exists(e.sockDir(id)) {
		t.Errorf("net1's DEL left its socket or directory")
	}
	if claims := dirEntries(t, filepath.Join(e.stateDir, "claims")); len(claims) != 0 {
		t.Errorf("claims left: %v", claims)
	}
}

// An ADD that died half-way leaves its incomplete record and claims: DEL
// removes what it may have made, and the paths are free again.
func TestDelAfterAddDied(t *testing.T) {
	e := newEnv(t)
	id := containerID("died")
	conf := e.conf("1.0.0")
	e.add(id, "net1", conf)
	// Turn the record back into the one ADD writes before its first side
	// effect, as if ADD had died after the attach.
	rec := e.loadRecord(id, "net1")
	rec.Incomplete, rec.EngineData = true, nil
	if err := e.store().Save(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
		t.Fatal(err)
	}
	e.assertGone(id, "net1", false)
	// Another sandbox may now use the paths.
	e.add(containerID("next"), "net1", conf)
}

// DEL of a pod whose per-pod directory a pod replaced with a symlink out of
// the base: the teardown finishes, the record goes, nothing outside is
// touched.
func TestDelThroughReplacedDirectory(t *testing.T) {
	e := newEnv(t)
	id := containerID("replaced")
	conf := e.conf("1.0.0")
	e.add(id, "net1", conf)
	outside := t.TempDir()
	canary := filepath.Join(outside, filepath.Base(e.configDataPath(id, "net1")))
	mustWrite(t, canary, "not the plugin's")
	if err := os.Rename(e.sockDir(id), e.sockDir(id)+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, e.sockDir(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if !exists(canary) {
		t.Errorf("DEL removed %s through the planted link", canary)
	}
	if e.loadRecord(id, "net1") != nil {
		t.Errorf("record kept")
	}
	if !strings.Contains(e.stderr.String(), "treated as gone") {
		t.Errorf("the replaced directory was not logged")
	}
}

// GC releases each collected attachment's address with an IPAM DEL for
// that attachment, then delegates GC.
func TestGCReleasesEachAddress(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.1.0", withIPAM("recording-ipam"))
	keep, drop := containerID("gc-keep"), containerID("gc-drop")
	e.add(keep, "net1", conf)
	e.add(drop, "net1", conf)
	if err := os.WriteFile(ipamLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	gc := e.conf("1.1.0", withIPAM("recording-ipam"), withValid(keep, "net1"))
	if _, err := run(t, e.p.GC, gcArgs(gc)); err != nil {
		t.Fatalf("GC: %v", err)
	}
	calls := ipamCalls(t)
	want := []string{"DEL|" + drop + "|net1", "GC||"}
	if len(calls) != 2 || calls[0] != want[0] || calls[1] != want[1] {
		t.Errorf("IPAM calls %q, want %q", calls, want)
	}
}

// Records and locks of ids too long for file names still work, so DEL of
// any id finishes; ADD refuses ids over 128 characters, naming the field.
func TestLongContainerIDs(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("1.0.0")
	long := strings.Repeat("a", 246) + containerID("long")[:10]
	_, err := run(t, e.p.Add, e.args(long, "net1", conf))
	if err == nil || !strings.Contains(err.Error(), "CNI_CONTAINERID") {
		t.Fatalf("ADD with a 256-character id = %v, want a refusal naming CNI_CONTAINERID", err)
	}
	if e.sw.opens != 0 {
		t.Errorf("the refused ADD reached the switch")
	}
	if _, err := run(t, e.p.Del, e.args(long, "net1", conf)); err != nil {
		t.Errorf("DEL of a 256-character id: %v", err)
	}
	// A record of such an id (written by anything) is found and removed.
	if err := e.store().Save(&state.Record{ContainerID: long, IfName: "net1", Network: "net1", Engine: "ovs-dpdk",
		EngineData: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, e.p.Del, e.args(long, "net1", conf)); err != nil {
		t.Errorf("DEL of a recorded 256-character id: %v", err)
	}
	if r, err := e.store().Load(long, "net1"); r != nil || err != nil {
		t.Errorf("record of the long id left: %v %v", r, err)
	}
}

// DEL of an attachment whose claim on its config-data file is corrupt: the
// file counts as another attachment's and stays, as does the claim, and the
// log says why; DEL succeeds (it failed on every retry, in releasing the
// claim, before).
func TestDelCorruptClaim(t *testing.T) {
	e := newEnv(t)
	id := containerID("corruptclaim")
	conf := e.conf("1.0.0")
	e.add(id, "net1", conf)
	cd := e.configDataPath(id, "net1")
	sum := sha256.Sum256([]byte(filepath.Clean(cd)))
	claim := filepath.Join(e.stateDir, "claims", hex.EncodeToString(sum[:20]))
	if _, err := os.Readlink(claim); err != nil {
		t.Fatalf("no claim on %s where the store keeps it: %v", cd, err)
	}
	if err := os.Remove(claim); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("{not json", claim); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := run(t, e.p.Del, e.args(id, "net1", conf)); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	if !exists(cd) {
		t.Errorf("DEL removed %s, whose claim it cannot read", cd)
	}
	if target, err := os.Readlink(claim); err != nil || target != "{not json" {
		t.Errorf("the unreadable claim: %q, %v; want it left", target, err)
	}
	if e.loadRecord(id, "net1") != nil {
		t.Errorf("record kept")
	}
	for _, want := range []string{"cannot read the claim", "leaving a claim that cannot be read"} {
		if !strings.Contains(e.stderr.String(), want) {
			t.Errorf("%q not logged", want)
		}
	}
}
