package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/userspace-cni/userspace/pkg/agent"
	cniplugin "github.com/userspace-cni/userspace/pkg/plugin"
	"github.com/userspace-cni/userspace/pkg/state"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// restoreAttachments is how many attachments the switch loses at once.
const restoreAttachments = 100

// BenchmarkRestore: 100 server-mode attachments (the notes' default) on
// OVS-DPDK and the node agent running; each iteration kills ovs-vswitchd and
// starts it again. Per attachment, the time from the restarted switch
// accepting requests (DPDK initialised, which is when StartVswitchd returns)
// to its socket in the pod's directory accepting connections again,
// reported as restore-p50/p99-ms; restore-all-ms is the time to the last
// one. First packets are not measured here (TestAgentChaos checks them).
//
//	go test -run '^$' -bench Restore -benchtime 3x ./tests/bench/
func BenchmarkRestore(b *testing.B) {
	bridge := "br-restore"
	ensureBridge(b, bridge)
	stdin := conf(bridge, "server")
	var ids []string
	b.Cleanup(func() {
		for _, id := range ids {
			if _, log, err := plugin("DEL", id, stdin); err != nil {
				b.Errorf("%v\n%s", err, log)
			}
		}
	})
	store := state.New(filepath.Join(bed.root, "state"))
	var sockets []string
	for range restoreAttachments {
		id := newID()
		if _, log, err := plugin("ADD", id, stdin); err != nil {
			b.Fatalf("%v\n%s", err, log)
		}
		ids = append(ids, id)
		rec, err := store.Load(id, "net1")
		if err != nil || rec == nil {
			b.Fatalf("record of %s: %v", id, err)
		}
		sockets = append(sockets, rec.Layout.ConnectPath())
	}
	getenv := testbed.PolicyGetenv(bed.policy)
	a := agent.New(agent.Config{
		Plugin:        &cniplugin.Plugin{Getenv: getenv, Stderr: io.Discard, OpenEngine: cniplugin.OpenEngine},
		Log:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		ProbeInterval: 250 * time.Millisecond, Resync: time.Hour,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	// The agent has been over the attachments once and watches the switch.
	time.Sleep(2 * time.Second)

	s := samples{}
	b.ResetTimer()
	for range b.N {
		if err := bed.ovs.KillVswitchd(); err != nil {
			b.Fatal(err)
		}
		if err := bed.ovs.StartVswitchd(); err != nil {
			b.Fatal(err)
		}
		back := time.Now()
		left := map[int]bool{}
		for i := range sockets {
			left[i] = true
		}
		deadline := back.Add(60 * time.Second)
		for len(left) > 0 {
			for i := range left {
				if c, err := net.DialTimeout("unix", sockets[i], 100*time.Millisecond); err == nil {
					_ = c.Close()
					s.add("restore", time.Since(back))
					delete(left, i)
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d attachments not restored within 60 s\n%s", len(left), len(sockets), bed.ovs.Logs())
			}
			time.Sleep(2 * time.Millisecond)
		}
		s.add("restore-all", time.Since(back))
	}
	b.StopTimer()
	s.report(b)
	b.ReportMetric(float64(restoreAttachments), "attachments")
}
