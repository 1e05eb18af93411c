package integration

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/userspace-cni/userspace/tests/testbed"
)

// TestDataPath attaches two "pods" to one bridge through the plugin and runs
// dpdk-testpmd in each pod's network namespace, configured only from the
// config data the plugin published (socket file and vhost mode), then checks
// that packets sent by one arrive at the other through the switch.
func TestDataPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		conf func() map[string]any
	}{
		// The published example: OVS connects, the pod app is the server.
		{"ovs-client", func() map[string]any { return ovsExample("br-dp1") }},
		// The notes' default: OVS is the server, the pod app connects.
		{"ovs-server", func() map[string]any {
			return map[string]any{"host": map[string]any{"engine": "ovs-dpdk", "iftype": "vhostuser",
				"bridge": map[string]any{"bridgeName": "br-dp2"}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list := confList(t, "1.0.0", "dp-"+tc.name, tc.conf())
			sender, receiver := newPod(t), newPod(t)
			for _, p := range []*pod{sender, receiver} {
				attach(t, list, p, "net1")
			}
			rx := startApp(t, receiver, "rxonly")
			tx := startApp(t, sender, "txonly")
			st, err := rx.WaitRx(1, 90*time.Second)
			if err != nil {
				t.Fatalf("no packets crossed the switch: %v\nsender:\n%s\nswitch:\n%s", err, tx.Output(), h.ovs.Logs())
			}
			t.Logf("receiver counted %d packets", st.RxPackets)
			// Stats print once a second: give the sender's a moment.
			deadline := time.Now().Add(5 * time.Second)
			for {
				txst, err := tx.Stats()
				if err == nil && txst.TxPackets > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("sender reports no transmitted packets: %+v, %v", txst, err)
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

// attach adds a pod to the network and removes it (checking nothing is
// left) when the test ends.
func attach(t *testing.T, list *libcni.NetworkConfigList, p *pod, ifName string) {
	t.Helper()
	rt := p.rt(ifName)
	if _, err := h.cni.AddNetworkList(ctx(), list, rt); err != nil {
		t.Fatalf("ADD %s: %v", p.id[:12], err)
	}
	t.Cleanup(func() {
		if err := h.cni.DelNetworkList(ctx(), list, rt); err != nil {
			t.Errorf("DEL %s: %v", p.id[:12], err)
		}
		assertClean(t, p, filepath.Join("/var/lib/cni/vhostuser", p.id))
	})
}

// startApp starts testpmd in the pod as its app would: the EAL arguments
// come from dpdk-args reading the config data file in the pod's socket
// directory, so a wrong argument from the helper fails the data path.
func startApp(t *testing.T, p *pod, mode string) *testbed.TestPMD {
	t.Helper()
	return startAppOn(t, p, mode, "")
}

// startAppOn is startApp with the EAL --lcores map given (empty: the test
// bed's default).
func startAppOn(t *testing.T, p *pod, mode, lcores string) *testbed.TestPMD {
	t.Helper()
	dir := filepath.Join("/var/lib/cni/vhostuser", p.id)
	vdevs, err := testbed.DPDKArgs(h.binDir, "-dir", dir, "-if", "net1")
	if err != nil {
		t.Fatal(err)
	}
	app, err := testbed.StartTestPMD(testbed.TestPMDOptions{
		VDevs:       vdevs,
		ForwardMode: mode,
		NetNS:       p.ns.Path(),
		Lcores:      lcores,
	})
	if err != nil {
		t.Fatalf("starting testpmd (%s) with %q: %v", mode, vdevs, err)
	}
	t.Cleanup(func() {
		if err := app.Stop(); err != nil {
			t.Errorf("stopping testpmd: %v", err)
		}
	})
	return app
}
