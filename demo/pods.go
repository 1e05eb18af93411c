package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/testbed"
)

const (
	vhuHost = "/var/lib/cni/vhostuser" // the notes' host directory...
	vhuPod  = "/vhu"                   // ...that their pods mount here
	ifName  = "net1"
	// pktgenMAC is the MAC the pktgen pod asks for, the Multus way (its
	// network-selection annotation's "mac" becomes MAC= in CNI_ARGS);
	// l3fwd sends its packets back to it.
	pktgenMAC = "02:00:00:00:00:02"
)

// pod is a pod sandbox: a sandbox id, a network namespace and, for the OVS
// pods, the app running in new mount and PID namespaces.
type pod struct {
	name, id, uid string
	ns            *testbed.NetNS
	netconf       string // the NAD config the plugin gets on stdin
	policy        string // the node policy file the plugin runs under
	added         bool   // ADDed and not yet DELeted

	prefix string // DPDK --file-prefix of its app
	log    string
	cmd    *exec.Cmd // the unshare wrapper; its child is the pod's PID 1
	done   chan struct{}
	vpp    *testbed.VPP // a VPP pod's own VPP
	addr   netip.Prefix // a VPP pod's IPAM address
}

// newPod makes a sandbox: a random 64-hex id, as a runtime's, and a network
// namespace usp-demo-<run>-<name>.
func (d *demo) newPod(name, netconf, policyFile string) (*pod, error) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails on Linux
	uid, err := os.ReadFile("/proc/sys/kernel/random/uuid")
	if err != nil {
		return nil, err
	}
	p := &pod{name: name, id: hex.EncodeToString(b), uid: strings.TrimSpace(string(uid)),
		netconf: netconf, policy: policyFile, prefix: d.name(name), log: filepath.Join(d.tmp, name+".log")}
	if p.ns, err = testbed.NewNetNS(d.name(name)); err != nil {
		return nil, err
	}
	return p, nil
}

// name is a name of this run: usp-demo-<run>-<what>.
func (d *demo) name(what string) string { return "usp-demo-" + d.runID + "-" + what }

// cniArgs are the CNI_ARGS Multus passes.
func (p *pod) cniArgs() string {
	args := fmt.Sprintf("IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s",
		p.name, p.id, p.uid)
	if p.name == "pktgen" {
		args += ";MAC=" + pktgenMAC
	}
	return args
}

// cni runs the plugin for the pod as Multus delegates to it and returns
// its result.
func (d *demo) cni(verb string, p *pod) ([]byte, error) {
	env := []string{"CNI_COMMAND=" + verb, "CNI_CONTAINERID=" + p.id, "CNI_NETNS=" + p.ns.Path(),
		"CNI_IFNAME=" + ifName, "CNI_PATH=" + d.bin, "CNI_ARGS=" + p.cniArgs(), policy.PathEnv + "=" + p.policy}
	if verb == "ADD" {
		p.added = true // a failed ADD may leave something a DEL removes
	}
	out, _, err := testbed.RunPluginOutput(filepath.Join(d.bin, "userspace"), env, []byte(p.netconf))
	if err != nil {
		return nil, fmt.Errorf("CNI %s for the %s pod: %w", verb, p.name, err)
	}
	if verb == "DEL" {
		p.added = false
	}
	return out, nil
}

// startApp runs demo/pod.sh as PID 1 of the pod: in its network namespace,
// in new mount and PID namespaces, as a container runtime would.
func (d *demo) startApp(p *pod, peerMAC string) error {
	d.out.Say("%s pod: netns %s, new mount and PID namespaces, %s at %s, the sandbox's hostname file at /etc/hostname",
		p.name, p.ns.Name, vhuHost, vhuPod)
	hostname := filepath.Join(d.tmp, "io.containerd.grpc.v1.cri", "sandboxes", p.id, "hostname")
	logf, err := os.Create(p.log)
	if err != nil {
		return err
	}
	defer logf.Close()
	p.cmd = exec.Command("nsenter", "--net="+p.ns.Path(), "--",
		"unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child", "--",
		filepath.Join(d.repo, "demo", "pod.sh"), hostname, p.name, p.id, p.prefix, peerMAC)
	p.cmd.Env = append(os.Environ(), "DEMO_REPO="+d.repo, "DEMO_BIN="+d.bin, "DEMO_L3FWD="+d.l3fwd,
		"DEMO_PKTGEN_MODE="+d.cfg.pktgenMode)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C reaches only the demo, which stops
	// the pods in order. If the demo dies, so does the pod (and with
	// --kill-child, everything in it).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	return nil
}

func (p *pod) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stopApp stops the pod's app (its PID-namespace init, which takes every
// other process of the pod with it), then the unshare wrapper, by PID.
func (p *pod) stopApp() error {
	if p.cmd == nil {
		return nil
	}
	var err error
	if p.running() {
		for _, kid := range testbed.ChildPIDs(p.cmd.Process.Pid) {
			err = testbed.StopPID(kid, 5*time.Second)
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	p.cmd = nil
	_ = os.RemoveAll(testbed.DPDKRuntimeDir(p.prefix)) // EAL never removes it
	return err
}

// waitLog waits until the pod's log matches re, failing if the pod exits
// or timeout passes.
func (d *demo) waitLog(p *pod, re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.log)
		if re.Match(b) {
			return string(b), nil
		}
		if !p.running() {
			return "", fmt.Errorf("the %s pod exited; its output:\n%s", p.name, tail(string(b), 30))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the %s pod: no /%s/ after %v; its output:\n%s", p.name, re, timeout, tail(string(b), 30))
		}
		if err := d.nap(100 * time.Millisecond); err != nil {
			return "", err
		}
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// linesMatching are the lines of s that re matches.
func linesMatching(s string, re *regexp.Regexp) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
