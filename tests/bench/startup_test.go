package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/userspace-cni/userspace/tests/testbed"
)

// baselineEnv names an optional second plugin binary (an earlier build) that
// BenchmarkStartup runs interleaved with the one under test, so a before and
// after comparison shares one machine state rather than two noisy runs.
const baselineEnv = "USERSPACE_BENCH_BASELINE"

// BenchmarkStartup puts the plugin's cheapest verbs next to the start of
// the smallest Go CNI plugin, host-local's VERSION, interleaved call by call
// so that load on the machine weighs on both alike. Each iteration runs
// host-local VERSION, the plugin's VERSION, ADD and DEL of an OVS-DPDK
// client-mode port and ADD and DEL of a VPP memif (both without IPAM), and
// reports each p50 and its ratio to host-local's (issue 13's goal: VERSION
// within 1.2x, ADD and DEL within 1.5x), and the median of each process's
// minor page faults: the memory it touches, which on a VM whose page faults
// are slow is much of a start-up's cost, and which load does not blur.
// With USERSPACE_BENCH_BASELINE set the same rows are measured for that
// binary too, prefixed "base-".
func BenchmarkStartup(b *testing.B) {
	ensureBridge(b, "br-start")
	ovsConf := conf("br-start", "client")
	// The VPP example without its debug log level: the ratio is about the
	// plugin at its default level, not about writing debug lines.
	memifConf := bytes.Replace(vppConf(""), []byte(`"logLevel": "debug", `), nil, 1)
	hostLocal := filepath.Join(filepath.Dir(bed.bin), "host-local")
	bins := map[string]string{"": bed.bin}
	if base := os.Getenv(baselineEnv); base != "" {
		bins["base-"] = base
	}
	s, faults := samples{}, faultCounts{}
	for b.Loop() {
		d, flt, err := testbed.RunPluginFaults(hostLocal, []string{"CNI_COMMAND=VERSION"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.add("host-local-version", d)
		faults["host-local-version"] = append(faults["host-local-version"], flt)
		for prefix, bin := range bins {
			startupRound(b, s, faults, prefix, bin, ovsConf, memifConf)
		}
	}
	hl := testbed.Percentile(s["host-local-version"], 50)
	b.ReportMetric(hl, "host-local-version-p50-ms")
	b.ReportMetric(faults.median("host-local-version"), "host-local-version-minflt")
	for prefix := range bins {
		for _, row := range []string{"version", "ovs-add", "ovs-del", "memif-add", "memif-del"} {
			p50 := testbed.Percentile(s[prefix+row], 50)
			b.ReportMetric(p50, prefix+row+"-p50-ms")
			if hl > 0 {
				b.ReportMetric(p50/hl, prefix+row+"-ratio")
			}
			b.ReportMetric(faults.median(prefix+row), prefix+row+"-minflt")
		}
	}
}

// startupRound runs one VERSION and one ADD and DEL per engine through bin
// and records each wall time and fault count under prefix.
func startupRound(b *testing.B, s samples, faults faultCounts, prefix, bin string, ovsConf, memifConf []byte) {
	b.Helper()
	run := func(row, verb, id string, stdin []byte) {
		d, flt, err := testbed.RunPluginFaults(bin, pluginEnv(verb, id), stdin)
		if err != nil {
			b.Fatalf("%s%s: %v", prefix, row, err)
		}
		s.add(prefix+row, d)
		faults[prefix+row] = append(faults[prefix+row], flt)
	}
	run("version", "VERSION", testbed.SandboxID(), nil)
	id := testbed.SandboxID()
	run("ovs-add", "ADD", id, ovsConf)
	run("ovs-del", "DEL", id, ovsConf)
	id = testbed.SandboxID()
	run("memif-add", "ADD", id, memifConf)
	run("memif-del", "DEL", id, memifConf)
}

// faultCounts are minor page faults per process, by row.
type faultCounts map[string][]int64

// median is the row's median fault count (0 for none).
func (f faultCounts) median(row string) float64 {
	xs := slices.Sorted(slices.Values(f[row]))
	if len(xs) == 0 {
		return 0
	}
	return float64(xs[len(xs)/2])
}
