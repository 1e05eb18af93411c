// Command demo runs the application notes' OVS-DPDK scenario (an l3fwd pod
// and a packet-generator pod on one vhost-user bridge) and VPP scenario
// (two pods with their own VPPs pinging across bridge domain 4) through
// the plugin, on one machine, with no Kubernetes, no hugepages and no NIC,
// on top of the test bed (tests/testbed). Run it as root from the
// repository (make demo). It prints every command as a user would type it,
// checks that packets cross the switches and that DEL leaves nothing, and
// stops everything it started, by PID, on success, failure, Ctrl-C and
// SIGTERM. See demo/README.md.
//
// Environment knobs (all optional):
//
//	DEMO_PKTGEN_MODE  testpmd forwarding mode of the pktgen pod: txonly
//	                  (default: sends only, so l3fwd's packets back show at
//	                  the switch) or flowgen (also drains its receive queue,
//	                  so testpmd counts the return traffic itself).
//	DEMO_SAMPLES      number of counter samples (default 3), 5 s apart.
//	DEMO_KEEP_LOGS    a directory to copy the switch's, the VPPs' and the
//	                  pods' logs to.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/userspace-cni/userspace/tests/testbed"
)

// config is what the environment chose.
type config struct {
	pktgenMode string
	samples    int
	keepLogs   string
}

func readConfig() (config, error) {
	c := config{pktgenMode: "txonly", samples: 3, keepLogs: os.Getenv("DEMO_KEEP_LOGS")}
	if m := os.Getenv("DEMO_PKTGEN_MODE"); m != "" {
		c.pktgenMode = m
	}
	if c.pktgenMode != "txonly" && c.pktgenMode != "flowgen" {
		return c, fmt.Errorf("DEMO_PKTGEN_MODE must be flowgen or txonly, not %s", c.pktgenMode)
	}
	if s := os.Getenv("DEMO_SAMPLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return c, fmt.Errorf("DEMO_SAMPLES must be a positive number, not %s", s)
		}
		c.samples = n
	}
	return c, nil
}

func main() { os.Exit(run()) }

// run returns the exit status: 0, 1 on failure, 130 or 143 when a SIGINT
// or SIGTERM interrupted the demo (after cleaning up either way).
func run() int {
	o := newOut()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "run me as root: the demo creates namespaces and starts a private OVS-DPDK and VPPs")
		return 1
	}
	cfg, err := readConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%sdemo failed:%s %v\n", o.red, o.noColour, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	caught := make(chan syscall.Signal, 1)
	go func() {
		s := (<-sigs).(syscall.Signal)
		caught <- s
		cancel()
		signal.Stop(sigs) // a second Ctrl-C during clean-up ends the demo at once
	}()

	d := &demo{out: o, cfg: cfg, ctx: ctx}
	start := time.Now()
	err = d.main()
	rc := 0
	if err != nil {
		rc = 1
		select {
		case s := <-caught:
			rc = 128 + int(s)
			caught <- s
		default:
			fmt.Fprintf(os.Stderr, "%sdemo failed:%s %v\n", o.red, o.noColour, err)
		}
	} else {
		o.Say("")
		o.Say("all steps done in %d s", int(time.Since(start).Seconds()))
	}
	// A signal that arrives now is handled by the clean-up running anyway.
	return d.cleanup(rc)
}

// demo is one run: what it created, so that clean-up removes exactly that.
type demo struct {
	out *out
	cfg config
	ctx context.Context

	repo  string // the repository: deploy/get-prefix.sh, demo/pod.sh, the Go module
	tmp   string // the run's private directory
	runID string // names this run's namespaces, DPDK prefixes and VPPs
	bin   string // the plugin, the pod-side helpers and host-local: CNI_PATH
	l3fwd string

	ovs        *testbed.OVS
	ovsPods    []*pod
	vppHost    *testbed.VPP
	vppPods    []*pod
	createdVHU bool
}

// main runs the steps; the first error ends the demo.
func (d *demo) main() error {
	fmt.Printf("%sThe userspace CNI plugin: the application notes' OVS-DPDK (l3fwd + pktgen) and VPP scenarios%s\n",
		d.out.bold, d.out.noColour)
	for _, step := range []func() error{
		d.prepare, d.startOVS, d.addOVSPods, d.runOVSPods, d.watchCounters, d.delOVSPods,
		d.startHostVPP, d.addVPPPods, d.runVPPPods, d.ping, d.delVPPPods,
	} {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// nap sleeps, returning early with an error when the demo is interrupted.
func (d *demo) nap(t time.Duration) error {
	select {
	case <-d.ctx.Done():
		return d.ctx.Err()
	case <-time.After(t):
		return nil
	}
}

// findRepo is the directory of go.mod above the working directory.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "demo", "pod.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the demo from the repository (make demo): demo/pod.sh not found")
		}
		dir = parent
	}
}
