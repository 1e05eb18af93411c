// Package bench measures the plugin binary against a real OVS-DPDK, side by
// side in one run with the original plugin's mechanism (its sequence of
// ovs-vsctl calls) and with the floor (one bare OVSDB transaction from a
// persistent client, with and without the switch's confirmation).
//
//	go test -run '^$' -bench 'AddDel|Version|Scale' -benchtime 50x ./tests/bench/
//	go test -run '^$' -bench Parallel -benchtime 1x ./tests/bench/
//
// Each iteration is one attachment; metrics are per-attachment latencies
// in milliseconds (p50/p99). Timing targets live here, not in tests.
package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/testbed"
)

var bed struct {
	root    string
	bin     string
	ovs     *testbed.OVS
	policy  string
	vpp     *testbed.VPP
	vppSock string
}

func TestMain(m *testing.M) { testbed.Main(m, "bench", setup) }

func setup(m *testing.M) (int, error) {
	root, cleanup, err := testbed.Prepare("usp-bench-")
	if err != nil {
		return 0, err
	}
	defer cleanup()
	bed.root = root
	bed.bin = filepath.Join(root, "bin", "userspace")
	// Shared mempools (OVS's default) with enough memory that a thousand
	// vhost-user ports fit: per-port mempools would need ~50 MB each.
	o, v, stop, err := testbed.StartSwitches(root, testbed.OVSOptions{MemoryMB: 1536, SharedMempool: true})
	if err != nil {
		return 0, err
	}
	defer stop()
	bed.ovs, bed.vpp, bed.vppSock = o, v, v.APISocket
	bed.policy = filepath.Join(root, "policy.json")
	if err := writePolicy(nil); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

func writePolicy(mutate func(*policy.Policy)) error {
	return testbed.WritePolicy(bed.ovs.NodePolicy(bed.root, bed.vppSock, filepath.Join(bed.root, "shared")), mutate, bed.policy)
}

// conf is the published OVS-DPDK example (OVS as vhost-user client) with
// its sockets under the bench's shared directory.
func conf(bridge, mode string) []byte {
	return fmt.Appendf(nil, `{"cniVersion": "1.1.0", "name": "bench", "type": "userspace", "sharedDir": %q,
 "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge", "vhost": {"mode": %q}, "bridge": {"bridgeName": %q}},
 "container": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "interface"}}`,
		filepath.Join(bed.root, "shared"), mode, bridge)
}

// plugin runs the binary once, as a runtime does, and returns its wall time
// and its log (stderr).
func plugin(verb, id string, stdin []byte) (time.Duration, []byte, error) {
	d, log, err := testbed.RunPlugin(bed.bin, pluginEnv(verb, id), stdin)
	if err != nil {
		return d, log, fmt.Errorf("%s: %w", verb, err)
	}
	return d, log, nil
}

// pluginEnv is the CNI environment of one plugin run for sandbox id.
func pluginEnv(verb, id string) []string {
	return []string{"CNI_COMMAND=" + verb, "CNI_CONTAINERID=" + id, "CNI_NETNS=/var/run/netns/bench",
		"CNI_IFNAME=net1", "CNI_PATH=" + filepath.Dir(bed.bin),
		"CNI_ARGS=IgnoreUnknown=true;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-" + id[:8]}
}

func vsctl(args ...string) error {
	_, err := bed.ovs.Vsctl(args...)
	return err
}

func ensureBridge(b *testing.B, name string) {
	b.Helper()
	if err := vsctl("--may-exist", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev"); err != nil {
		b.Fatalf("%v\nswitch log:\n%s", err, bed.ovs.Logs())
	}
}

// samples collects latencies and reports percentiles as metrics.
type samples map[string][]time.Duration

func (s samples) add(name string, d time.Duration) { s[name] = append(s[name], d) }

func (s samples) report(b *testing.B) {
	for name, ds := range s {
		b.ReportMetric(testbed.Percentile(ds, 50), name+"-p50-ms")
		b.ReportMetric(testbed.Percentile(ds, 99), name+"-p99-ms")
	}
}

// BenchmarkAddDel compares one attachment's ADD and DEL through the plugin
// binary with the original plugin's ovs-vsctl sequence and the OVSDB floor.
func BenchmarkAddDel(b *testing.B) {
	b.Run("plugin", func(b *testing.B) { benchPlugin(b, "br-bp", "client") })
	b.Run("plugin-confirmed", func(b *testing.B) {
		confirm := 5000
		if err := writePolicy(func(p *policy.Policy) { p.OVSConfirmTimeoutMs = &confirm }); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = writePolicy(nil) }()
		benchPlugin(b, "br-bpc", "client")
	})
	b.Run("plugin-server-mode", func(b *testing.B) { benchPlugin(b, "br-bps", "server") })
	b.Run("original-ovs-vsctl", func(b *testing.B) { benchOriginal(b, "br-orig") })
	b.Run("floor-ovsdb-confirmed", func(b *testing.B) { benchFloor(b, "br-floor", true) })
	b.Run("floor-ovsdb-unconfirmed", func(b *testing.B) { benchFloor(b, "br-floor2", false) })
}

func benchPlugin(b *testing.B, bridge, mode string) {
	ensureBridge(b, bridge)
	addDel(b, conf(bridge, mode))
}

// addDel adds and deletes one attachment per iteration through the binary
// and reports both latencies.
func addDel(b *testing.B, stdin []byte) samples {
	s := samples{}
	for b.Loop() {
		id := testbed.SandboxID()
		d, _, err := plugin("ADD", id, stdin)
		if err != nil {
			b.Fatal(err)
		}
		s.add("add", d)
		if d, _, err = plugin("DEL", id, stdin); err != nil {
			b.Fatal(err)
		}
		s.add("del", d)
	}
	s.report(b)
	return s
}

// benchOriginal replays the original plugin's ovs-vsctl calls for one
// attachment: find the bridge, add the port, read the port's MAC; then
// delete the port and list the bridge's ports.
func benchOriginal(b *testing.B, bridge string) {
	ensureBridge(b, bridge)
	dir := filepath.Join(bed.root, "orig")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	s := samples{}
	for b.Loop() {
		name := testbed.SandboxID()[:12] + "-net1"
		start := time.Now()
		steps := [][]string{
			{"--bare", "--columns=name", "find", "bridge", "name=" + bridge},
			{"add-port", bridge, name, "--", "set", "Interface", name, "type=dpdkvhostuserclient",
				"options:vhost-server-path=" + filepath.Join(dir, name)},
			{"--bare", "--columns=mac", "find", "port", "name=" + name},
		}
		for _, st := range steps {
			if err := vsctl(st...); err != nil {
				b.Fatal(err)
			}
		}
		s.add("add", time.Since(start))
		start = time.Now()
		for _, st := range [][]string{{"--if-exists", "del-port", bridge, name}, {"list-ports", bridge}} {
			if err := vsctl(st...); err != nil {
				b.Fatal(err)
			}
		}
		s.add("del", time.Since(start))
	}
	s.report(b)
}

// BenchmarkVersion times the binary's start-up (CNI_COMMAND=VERSION).
func BenchmarkVersion(b *testing.B) {
	s := samples{}
	for b.Loop() {
		d, _, err := plugin("VERSION", testbed.SandboxID(), nil)
		if err != nil {
			b.Fatal(err)
		}
		s.add("version", d)
	}
	s.report(b)
}

// BenchmarkParallel runs 100 ADDs, 8 at a time, then the 100 DELs the same
// way, and fails on any error. One iteration is 200 invocations: run it with
// -benchtime 1x.
func BenchmarkParallel(b *testing.B) {
	const total, width = 100, 8
	ensureBridge(b, "br-par")
	stdin := conf("br-par", "client")
	s := samples{}
	for range b.N {
		ids := make([]string, total)
		for i := range ids {
			ids[i] = testbed.SandboxID()
		}
		for _, verb := range []string{"ADD", "DEL"} {
			start := time.Now()
			parallel(b, s, verb, ids, width, stdin)
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "par-"+verb+"-wall-ms")
		}
	}
	s.report(b)
}

// parallel runs verb for every id, width at a time, records each call's
// latency as "par-<verb>" and fails the benchmark on any error.
func parallel(b *testing.B, s samples, verb string, ids []string, width int, stdin []byte) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	work := make(chan string)
	for range width {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				d, _, err := plugin(verb, id, stdin)
				mu.Lock()
				s.add("par-"+verb, d)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		b.Fatalf("%d of %d parallel %ss failed; first: %v", len(errs), len(ids), verb, errs[0])
	}
}

// BenchmarkScale compares ADD and DEL on an empty bridge with the same on
// a bridge that already holds 1000 vhost-user ports (set up once and left
// for the switch's teardown: deleting them takes ovs-vswitchd a minute).
// It runs last, since a switch with 1000 ports reconfigures slowly. The
// confirmed variant shows what waiting for the switch would cost at scale.
func BenchmarkScale(b *testing.B) {
	const existing = 1000
	ensureBridge(b, "br-scale")
	var emptyP50 float64
	run := func(b *testing.B, confirmed bool) samples {
		if confirmed {
			confirm := 30000
			if err := writePolicy(func(p *policy.Policy) { p.OVSConfirmTimeoutMs = &confirm }); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = writePolicy(nil) }()
		}
		return addDel(b, conf("br-scale", "client"))
	}
	b.Run("empty", func(b *testing.B) { emptyP50 = testbed.Percentile(run(b, false)["add"], 50) })
	if err := addPorts("br-scale", existing); err != nil {
		b.Fatal(err)
	}
	b.Run("1000ports", func(b *testing.B) {
		s := run(b, false)
		if emptyP50 > 0 {
			b.ReportMetric(testbed.Percentile(s["add"], 50)/emptyP50, "add-p50-ratio-to-empty")
		}
	})
	b.Run("1000ports-confirmed", func(b *testing.B) { run(b, true) })
}
