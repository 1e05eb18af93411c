package integration

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/userspace-cni/userspace/pkg/agent"
	"github.com/userspace-cni/userspace/pkg/plugin"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/state"
)

// chaosRounds is how many times each switch restart is repeated
// (USERSPACE_CHAOS_ROUNDS, default 3 to keep the suite within its budget on
// two cores).
func chaosRounds(t *testing.T) int {
	n := 3
	if v := os.Getenv("USERSPACE_CHAOS_ROUNDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("invalid USERSPACE_CHAOS_ROUNDS %q", v)
		}
	}
	return n
}

// startAgent runs the node agent in the test process, on the suite's node
// policy and the real switches, until the test ends; it returns its HTTP
// handler's server.
func startAgent(t *testing.T) *httptest.Server {
	t.Helper()
	getenv := func(k string) string {
		if k == policy.PathEnv {
			return h.policy
		}
		return os.Getenv(k)
	}
	a := agent.New(agent.Config{
		Plugin:        &plugin.Plugin{Getenv: getenv, Stderr: io.Discard, OpenEngine: plugin.OpenEngine},
		Log:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		ProbeInterval: 100 * time.Millisecond, Resync: 2 * time.Second, RetryInterval: 200 * time.Millisecond,
	})
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(actx) }()
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return srv
}

func metricValue(t *testing.T, srv *httptest.Server, series string) float64 {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestAgentRestoresAfterVswitchdKill kills ovs-vswitchd (SIGKILL: it leaves
// its server-mode sockets behind) and starts it again, several times, with
// a server-mode and a client-mode attachment: each time the agent restores
// the server-mode socket in the pod's directory, CHECK passes again and the
// socket accepts connections; DEL then leaves nothing.
func TestAgentRestoresAfterVswitchdKill(t *testing.T) {
	lists := map[string]*libcni.NetworkConfigList{}
	pods := map[string]*pod{}
	for _, mode := range []string{"client", "server"} {
		lists[mode] = confList(t, "1.0.0", "agent-"+mode, map[string]any{"host": map[string]any{"engine": "ovs-dpdk",
			"iftype": "vhostuser", "vhost": map[string]any{"mode": mode}, "bridge": map[string]any{"bridgeName": "br-agent"}}})
		pods[mode] = newPod(t)
		if _, err := h.cni.AddNetworkList(ctx(), lists[mode], pods[mode].rt("net1")); err != nil {
			t.Fatal(err)
		}
		waitApplied(t, pods[mode].id)
	}
	rec, err := state.New(h.stateDir).Load(pods["server"].id, "net1")
	if err != nil || rec == nil {
		t.Fatalf("server-mode record: %v", err)
	}
	socket := rec.Layout.ConnectPath()
	srv := startAgent(t)
	restored := `userspace_cni_restores_total{engine="ovs-dpdk",result="restored"}`
	rounds := chaosRounds(t)
	for i := range rounds {
		if err := h.ovs.KillVswitchd(); err != nil {
			t.Fatal(err)
		}
		if err := h.ovs.StartVswitchd(); err != nil {
			t.Fatalf("round %d: restarting ovs-vswitchd: %v", i+1, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			var errs []string
			for _, mode := range []string{"client", "server"} {
				if err := h.cni.CheckNetworkList(ctx(), lists[mode], pods[mode].rt("net1")); err != nil {
					errs = append(errs, mode+": "+err.Error())
				}
			}
			if c, err := net.DialTimeout("unix", socket, time.Second); err != nil {
				errs = append(errs, "server-mode socket: "+err.Error())
			} else {
				_ = c.Close()
			}
			if len(errs) == 0 && metricValue(t, srv, restored) >= float64(i+1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: not restored within 30 s: %v; %s = %v", i+1, errs, restored, metricValue(t, srv, restored))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if n := metricValue(t, srv, `userspace_cni_switch_up{endpoint="`+h.ovs.DBEndpoint()+`",engine="ovs-dpdk"}`); n != 1 {
		t.Errorf("switch_up = %v", n)
	}
	for _, mode := range []string{"client", "server"} {
		if err := h.cni.DelNetworkList(ctx(), lists[mode], pods[mode].rt("net1")); err != nil {
			t.Errorf("%s mode: DEL: %v", mode, err)
		}
	}
	leakCheck(t)
}
