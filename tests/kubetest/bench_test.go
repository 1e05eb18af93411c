package kubetest_test

// Benchmarks of the plugin's API traffic against the real API server, per
// attachment, as a CNI process makes it (a new client each time: kubeconfig
// load and TLS handshake included):
//
//	go test -run '^$' -bench Kube -benchtime 200x ./tests/kubetest/
//
// Metrics are milliseconds (p50/p99) and requests per call.
//
// What linking pkg/kube costs each plugin process (size, start-up) is
// measured on the mains under testdata/startup: none (no Kubernetes code),
// kube (pkg/kube), typed (client-go's typed core/v1 client, which links
// client-go's all-groups scheme), clientset (the full Clientset) and plugin
// (the real plugin's wiring):
//
//	for v in none kube typed clientset plugin; do
//		CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /tmp/startup/$v ./tests/kubetest/testdata/startup/$v
//	done
//	cd /tmp/startup && hyperfine -N --warmup 50 --runs 1000 ./none ./kube ./typed ./clientset 'env CNI_COMMAND=VERSION ./plugin'
//	GODEBUG=inittrace=1 ./kube  # package initialisation, per package

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/userspace-cni/userspace/pkg/kube"
	"github.com/userspace-cni/userspace/tests/testbed"
)

type samples []time.Duration

func report(b *testing.B, name string, s samples) {
	b.ReportMetric(testbed.Percentile(s, 50), name+"-p50-ms")
	b.ReportMetric(testbed.Percentile(s, 99), name+"-p99-ms")
}

// BenchmarkKubeAddDel: one attachment's ADD (New, Pod, AddConfigData) and
// DEL (New, RemoveConfigData) per iteration, sequentially, on one pod.
func BenchmarkKubeAddDel(b *testing.B) {
	e := needEnv(b)
	ns := namespace(b, e)
	pod := createPod(b, e, ns, "bench", nil)
	ctx := context.Background()
	var newS, getS, addS, addTotal, delS samples
	var addReq, delReq int64
	for range b.N {
		cid := testbed.SandboxID()
		t0 := time.Now()
		c, err := kube.New(e.PluginKubeconfig, clientTimeout)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		p, err := c.Pod(ctx, ns, pod.Name, string(pod.UID))
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := c.AddConfigData(ctx, p, simpleEntry(cid, "net1"), "/var/lib/cni/usrspcni"); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		addReq += c.Requests()
		c.Close()
		newS, getS, addS, addTotal = append(newS, t1.Sub(t0)), append(getS, t2.Sub(t1)), append(addS, t3.Sub(t2)), append(addTotal, t3.Sub(t0))

		t4 := time.Now()
		d, err := kube.New(e.PluginKubeconfig, clientTimeout)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.RemoveConfigData(ctx, ns, pod.Name, cid, "net1"); err != nil {
			b.Fatal(err)
		}
		delS = append(delS, time.Since(t4))
		delReq += d.Requests()
		d.Close()
	}
	report(b, "new", newS)
	report(b, "pod", getS)
	report(b, "addcfg", addS)
	report(b, "add", addTotal)
	report(b, "del", delS)
	b.ReportMetric(float64(addReq)/float64(b.N), "req/add")
	b.ReportMetric(float64(delReq)/float64(b.N), "req/del")
}

// BenchmarkKubeAddParallel10: ten attachments of one pod added at once by
// ten clients (a pod with ten networks), per iteration; latency per ADD.
func BenchmarkKubeAddParallel10(b *testing.B) {
	e := needEnv(b)
	ns := namespace(b, e)
	const n = 10
	ctx := context.Background()
	var (
		mu   sync.Mutex
		adds samples
		reqs int64
	)
	for i := range b.N {
		b.StopTimer()
		name := fmt.Sprintf("bench-%d", i)
		createPod(b, e, ns, name, nil)
		cid := testbed.SandboxID()
		b.StartTimer()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for j := range n {
			wg.Go(func() {
				t0 := time.Now()
				c, err := kube.New(e.PluginKubeconfig, clientTimeout)
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				p, err := c.Pod(ctx, ns, name, "")
				if err == nil {
					err = c.AddConfigData(ctx, p, simpleEntry(cid, fmt.Sprintf("net%d", j+1)), "")
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				adds = append(adds, time.Since(t0))
				reqs += c.Requests()
				mu.Unlock()
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	report(b, "add", adds)
	b.ReportMetric(float64(reqs)/float64(len(adds)), "req/add")
}
