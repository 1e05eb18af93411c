package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/userspace-cni/userspace/tests/testbed"
)

// baselineEnv names an optional second plugin binary (an earlier build) that
// BenchmarkStartup runs interleaved with the one under test (or a
// colon-separated list of them), so a before and after comparison shares
// one machine state rather than two noisy runs.
const baselineEnv = "USERSPACE_BENCH_BASELINE"

// BenchmarkStartup puts the plugin's cheapest verbs next to the start of
// the smallest Go CNI plugin, host-local's VERSION, interleaved call by call
// so that load on the machine weighs on both alike. Each iteration runs the
// plugin's VERSION, host-local's VERSION, ADD and DEL of an OVS-DPDK
// client-mode port and ADD and DEL of a VPP memif (both without IPAM).
// host-local runs after the plugin's VERSION, never right after an ADD or
// DEL: the switches reconfigure for milliseconds after those (ovs-vswitchd
// spends about 20 ms of CPU after an ADD), and a host-local start sharing
// the two cores with that would make every ratio look better. It reports
// each row's p50 and its ratio to host-local's (issue 13's goal: VERSION
// within 1.2x, ADD and DEL within 1.5x), its p50 CPU time, and the median
// of each process's minor page faults: the memory it touches, which on a VM
// whose page faults are slow is much of a start-up's cost, and which load
// does not blur. The plugin's count includes the heap pages it populates at
// start in one call (pkg/shortlived), which the kernel counts as minor
// faults too; `perf stat -e page-faults` counts only the faults taken.
// With USERSPACE_BENCH_BASELINE set the same rows are measured for that
// binary too, prefixed "base-"; a list (colon-separated) adds "base2-" and
// so on.
func BenchmarkStartup(b *testing.B) {
	ensureBridge(b, "br-start")
	ovsConf := conf("br-start", "client")
	// The VPP example without its debug log level: the ratio is about the
	// plugin at its default level, not about writing debug lines.
	memifConf := bytes.Replace(vppConf(""), []byte(`"logLevel": "debug", `), nil, 1)
	hostLocal := filepath.Join(filepath.Dir(bed.bin), "host-local")
	bins := map[string]string{"": bed.bin}
	for i, base := range filepath.SplitList(os.Getenv(baselineEnv)) {
		prefix := "base-"
		if i > 0 {
			prefix = fmt.Sprintf("base%d-", i+1)
		}
		bins[prefix] = base
	}
	use := usages{}
	runHostLocal := func() {
		u, err := testbed.RunPluginUsage(hostLocal, []string{"CNI_COMMAND=VERSION"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		use.add("host-local-version", u)
	}
	for b.Loop() {
		for prefix, bin := range bins {
			startupRound(b, use, prefix, bin, ovsConf, memifConf, runHostLocal)
		}
	}
	hl := use.report(b, "host-local-version")
	for prefix := range bins {
		for _, row := range []string{"version", "ovs-add", "ovs-del", "memif-add", "memif-del"} {
			if p50 := use.report(b, prefix+row); hl > 0 {
				b.ReportMetric(p50/hl, prefix+row+"-ratio")
			}
		}
	}
}

// startupRound runs one VERSION and one ADD and DEL per engine through bin
// and records each process's usage under prefix; hostLocal runs after the
// VERSION.
func startupRound(b *testing.B, use usages, prefix, bin string, ovsConf, memifConf []byte, hostLocal func()) {
	b.Helper()
	run := func(row, verb, id string, stdin []byte) {
		u, err := testbed.RunPluginUsage(bin, pluginEnv(verb, id), stdin)
		if err != nil {
			b.Fatalf("%s%s: %v", prefix, row, err)
		}
		use.add(prefix+row, u)
	}
	run("version", "VERSION", testbed.SandboxID(), nil)
	hostLocal()
	id := testbed.SandboxID()
	run("ovs-add", "ADD", id, ovsConf)
	run("ovs-del", "DEL", id, ovsConf)
	id = testbed.SandboxID()
	run("memif-add", "ADD", id, memifConf)
	run("memif-del", "DEL", id, memifConf)
}

// usages are the plugin processes' usage, by row.
type usages map[string][]testbed.Usage

func (u usages) add(row string, x testbed.Usage) { u[row] = append(u[row], x) }

// report reports the row's p50 wall time (which it returns, in ms), p50 CPU
// time and median minor page faults.
func (u usages) report(b *testing.B, row string) float64 {
	var wall, cpu []time.Duration
	var flt []int64
	for _, x := range u[row] {
		wall, cpu, flt = append(wall, x.Wall), append(cpu, x.CPU), append(flt, x.MinFlt)
	}
	p50 := testbed.Percentile(wall, 50)
	b.ReportMetric(p50, row+"-p50-ms")
	b.ReportMetric(testbed.Percentile(cpu, 50), row+"-cpu-p50-ms")
	if slices.Sort(flt); len(flt) > 0 {
		b.ReportMetric(float64(flt[len(flt)/2]), row+"-minflt")
	}
	return p50
}
