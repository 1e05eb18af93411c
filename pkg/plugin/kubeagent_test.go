package plugin_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/userspace-cni/userspace/pkg/agent"
	"github.com/userspace-cni/userspace/pkg/podapi"
	"github.com/userspace-cni/userspace/pkg/policy"
)

// servePodAPI runs the node agent's pod API for the policy pol on the
// plugin's socket until the test ends.
func (e *testEnv) servePodAPI(pol *policy.Policy) {
	e.t.Helper()
	if err := os.MkdirAll(e.stateDir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	ln, err := agent.Listen(podapi.AgentSocketIn(e.stateDir))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.New(agent.Config{Plugin: e.p}).PodAPI(pol).Serve(ctx, ln) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("pod API: %v", err)
		}
	})
}

// markingHelper is the real helper behind a script that leaves a mark
// when it runs.
func markingHelper(t *testing.T) (helper, mark string) {
	dir := t.TempDir()
	helper, mark = filepath.Join(dir, podapi.HelperName), filepath.Join(dir, "ran")
	script := "#!/bin/sh\ntouch " + mark + "\nexec " + kubeHelper + "\n"
	if err := os.WriteFile(helper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return helper, mark
}

// With the node agent listening, ADD and DEL ask it, and no helper runs;
// a second attachment reuses the agent's client.
func TestKubernetesViaAgent(t *testing.T) {
	id := containerID("kube-agent")
	e, api, kc := kubeEnv(t, id)
	helper, mark := markingHelper(t)
	e.p.KubeHelper = helper
	e.servePodAPI(e.pol)
	conf := e.conf("1.0.0", withKubeconfig(kc), withoutIPAM())
	for _, ifName := range []string{"net1", "net2"} {
		if _, err := run(t, e.p.Add, e.args(id, ifName, conf)); err != nil {
			t.Fatalf("ADD %s: %v", ifName, err)
		}
	}
	if ents := api.entries(t); len(ents) != 2 {
		t.Errorf("annotation entries %+v, want net1 and net2", ents)
	}
	for _, ifName := range []string{"net1", "net2"} {
		if _, err := run(t, e.p.Del, e.args(id, ifName, conf)); err != nil {
			t.Fatalf("DEL %s: %v", ifName, err)
		}
	}
	if ents := api.entries(t); len(ents) != 0 {
		t.Errorf("DEL left annotation entries %+v", ents)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Error("the helper ran although the agent serves the kubeconfig")
	}
}

// An agent whose policy does not allow the kubeconfig answers that it does
// not serve it: the plugin runs its helper and ADD succeeds. So does an
// agent that is gone (its socket left behind).
func TestKubernetesAgentFallback(t *testing.T) {
	for _, tc := range []string{"unserved", "dead socket"} {
		t.Run(tc, func(t *testing.T) {
			id := containerID("kube-fb")
			e, api, kc := kubeEnv(t, id)
			helper, mark := markingHelper(t)
			e.p.KubeHelper = helper
			if tc == "unserved" {
				other := *e.pol
				other.KubeconfigDirs = []string{filepath.Join(e.root, "elsewhere")}
				e.servePodAPI(&other)
			} else {
				if err := os.MkdirAll(e.stateDir, 0o700); err != nil {
					t.Fatal(err)
				}
				ln, err := agent.Listen(podapi.AgentSocketIn(e.stateDir))
				if err != nil {
					t.Fatal(err)
				}
				ln.SetUnlinkOnClose(false)
				ln.Close()
			}
			conf := e.conf("1.0.0", withKubeconfig(kc), withoutIPAM())
			if _, err := run(t, e.p.Add, e.args(id, "net1", conf)); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if _, err := os.Stat(mark); err != nil {
				t.Errorf("the helper did not run: %v", err)
			}
			if ents := api.entries(t); len(ents) != 1 || !strings.HasPrefix(ents[0].ContainerID, id[:12]) {
				t.Errorf("annotation entries %+v", ents)
			}
		})
	}
}
