package multus

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/testbed"
)

var kubeRequestsRe = regexp.MustCompile(`Kubernetes API use.*requests=(\d+)`)

// baselineEnv names an optional second plugin binary (an earlier build) that
// BenchmarkKubeAddDel runs interleaved with the one under test, its rows
// prefixed "base-": a before and after comparison in one machine state.
const baselineEnv = "USERSPACE_BENCH_BASELINE"

// runPlugin runs the binary once as Multus's delegate call and returns its
// wall time and the Kubernetes API requests it logged.
func runPlugin(bin, verb string, s *sandbox, stdin []byte, env ...string) (time.Duration, int, error) {
	d, log, err := testbed.RunPlugin(bin, append([]string{"CNI_COMMAND=" + verb,
		"CNI_CONTAINERID=" + s.id, "CNI_NETNS=" + s.ns.Path(), "CNI_IFNAME=net1", "CNI_PATH=" + bed.bin,
		fmt.Sprintf("CNI_ARGS=IgnoreUnknown=true;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s",
			s.pod.Namespace, s.pod.Name, s.id, s.uid)}, env...), stdin)
	if err != nil {
		return d, 0, fmt.Errorf("%s: %w", verb, err)
	}
	n := 0
	if m := kubeRequestsRe.FindSubmatch(log); m != nil {
		n, _ = strconv.Atoi(string(m[1]))
	}
	return d, n, nil
}

// BenchmarkKubeAddDel calls the plugin directly, as Multus delegates to it,
// to time the plugin alone: what the Kubernetes steps add to one
// attachment's ADD and DEL (pod lookup, shared-dir volume, annotation
// patch, device-info) against the real API server, with the published
// OVS-DPDK example with and without a kubeconfig, alternating, and the API
// requests per ADD and DEL (target: one GET and one PATCH per ADD). The
// kubeconfig rows run twice: "kube" with no node agent (the plugin runs its
// helper, cmd/userspace-kube) and "agent-kube" with the real node agent
// answering on its socket (a second policy, whose state directory it
// serves).
//
//	go test -run '^$' -bench KubeAddDel -benchtime 50x ./tests/multus/
func BenchmarkKubeAddDel(b *testing.B) {
	with := []byte(fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "bench-kube", "type": "userspace", "logLevel": "debug",
 "kubeconfig": %q, "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge", "vhost": {"mode": "client"}, "bridge": {"bridgeName": "br-bk"}}}`,
		bed.kube.PluginKubeconfig))
	without := []byte(`{"cniVersion": "1.0.0", "name": "bench-kube", "type": "userspace", "logLevel": "debug",
 "host": {"engine": "ovs-dpdk", "iftype": "vhostuser", "netType": "bridge", "vhost": {"mode": "client"}, "bridge": {"bridgeName": "br-bk"}}}`)
	s := newPod(b, "default", "", "hostPath", mapped)
	agentPolicy := startAgent(b)
	bins := map[string]string{"": filepath.Join(bed.bin, "userspace")}
	if base := os.Getenv(baselineEnv); base != "" {
		bins["base-"] = base
	}
	lat := map[string][]time.Duration{}
	var addReq, delReq, n int
	for b.Loop() {
		for prefix, bin := range bins {
			type variant struct {
				name  string
				stdin []byte
				env   []string
			}
			rows := []variant{{"kube", with, nil}, {"nokube", without, nil}}
			if prefix == "" {
				rows = append(rows, variant{"agent-kube", with, []string{policy.PathEnv + "=" + agentPolicy}})
			}
			for _, v := range rows {
				row := prefix + v.name
				s.id = testbed.SandboxID()
				d, reqs, err := runPlugin(bin, "ADD", s, v.stdin, v.env...)
				if err != nil {
					b.Fatal(err)
				}
				lat[row+"-add"] = append(lat[row+"-add"], d)
				if row == "kube" {
					addReq += reqs
				}
				d, reqs, err = runPlugin(bin, "DEL", s, v.stdin, v.env...)
				if err != nil {
					b.Fatal(err)
				}
				lat[row+"-del"] = append(lat[row+"-del"], d)
				if row == "kube" {
					delReq += reqs
					n++
				}
			}
		}
	}
	for name, ds := range lat {
		b.ReportMetric(testbed.Percentile(ds, 50), name+"-p50-ms")
		b.ReportMetric(testbed.Percentile(ds, 99), name+"-p99-ms")
	}
	for _, prefix := range []string{"", "base-", "agent-"} {
		base := strings.TrimPrefix(prefix, "agent-")
		if _, ok := bins[base]; !ok {
			continue
		}
		for _, verb := range []string{"add", "del"} {
			b.ReportMetric(testbed.Percentile(lat[prefix+"kube-"+verb], 50)-testbed.Percentile(lat[base+"nokube-"+verb], 50), prefix+"added-"+verb+"-p50-ms")
		}
	}
	b.ReportMetric(float64(addReq)/float64(n), "api-requests/add")
	b.ReportMetric(float64(delReq)/float64(n), "api-requests/del")
}

// BenchmarkKubeAddDelMultus is a pod's ADD and DEL as the runtime sees them
// through the real Multus: Multus reads the pod and the NAD, runs the
// bridge + host-local cluster network, then the plugin with the published
// OVS-DPDK example (kubeconfig, device-info), and writes network-status.
// Beside BenchmarkKubeAddDel, it shows what the plugin's share is of a pod's
// networking time.
//
//	go test -run '^$' -bench KubeAddDelMultus -benchtime 20x ./tests/multus/
func BenchmarkKubeAddDelMultus(b *testing.B) {
	if err := bed.kube.CreateNAD(ctx(), "default", "bench-multus", ovsNAD(bed.kube.PluginKubeconfig, "br-bm")); err != nil {
		b.Fatal(err)
	}
	s := newPod(b, "default", `[{"name": "bench-multus", "deviceID": "vhu-net1"}]`, "hostPath", mapped)
	var adds, dels []time.Duration
	for b.Loop() {
		s.id = testbed.SandboxID()
		start := time.Now()
		if _, err := s.tryMultusAdd(); err != nil {
			b.Fatal(multusErr("ADD", err))
		}
		adds = append(adds, time.Since(start))
		start = time.Now()
		if err := bed.runtime.DelNetwork(ctx(), bed.multusConf, s.multusRT()); err != nil {
			b.Fatal(multusErr("DEL", err))
		}
		dels = append(dels, time.Since(start))
	}
	b.ReportMetric(testbed.Percentile(adds, 50), "multus-add-p50-ms")
	b.ReportMetric(testbed.Percentile(adds, 99), "multus-add-p99-ms")
	b.ReportMetric(testbed.Percentile(dels, 50), "multus-del-p50-ms")
	b.ReportMetric(testbed.Percentile(dels, 99), "multus-del-p99-ms")
}

// startAgent runs the real node agent (without its own Kubernetes client) on
// a copy of the suite's policy with a state directory of its own, until the
// benchmark ends, and returns that policy's path. A plugin run with it asks
// the agent; with the suite's policy, it finds no agent and runs its helper.
func startAgent(b *testing.B) string {
	b.Helper()
	if err := testbed.BuildBinary(bed.bin, "userspace-agent"); err != nil {
		b.Fatal(err)
	}
	p := nodePolicy()
	p.StateDir = filepath.Join(bed.root, "state-agent")
	data, err := json.Marshal(p)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(bed.root, "policy-agent.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(p.StateDir, 0o700); err != nil {
		b.Fatal(err)
	}
	a, err := testbed.StartAgent(filepath.Join(bed.bin, "userspace-agent"), path, "-log-level", "warn")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.Kill)
	return path
}
