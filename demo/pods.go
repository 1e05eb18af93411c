package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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
// pods, the app (demo/pod.sh) or, for the VPP pods, their own VPP.
type pod struct {
	name, id, uid string
	ns            *testbed.NetNS
	netconf       string // the NAD config the plugin gets on stdin
	policy        string // the node policy file the plugin runs under
	added         bool   // ADDed and not yet DELeted

	prefix string // DPDK --file-prefix of its app
	app    *testbed.App
	vpp    *testbed.VPP // a VPP pod's own VPP
	addr   netip.Prefix // a VPP pod's IPAM address
}

// newPod makes a sandbox: a random 64-hex id, as a runtime's, and a network
// namespace usp-demo-<run>-<name>.
func (d *demo) newPod(name, netconf, policyFile string) (*pod, error) {
	uid, err := os.ReadFile("/proc/sys/kernel/random/uuid")
	if err != nil {
		return nil, err
	}
	p := &pod{name: name, id: testbed.SandboxID(), uid: strings.TrimSpace(string(uid)),
		netconf: netconf, policy: policyFile, prefix: d.name(name)}
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

// startApp runs demo/pod.sh as PID 1 of the pod (testbed.StartApp), as a
// container runtime would.
func (d *demo) startApp(p *pod, peerMAC string) (err error) {
	d.out.Say("%s pod: netns %s, new mount and PID namespaces, %s at %s, the sandbox's hostname file at /etc/hostname",
		p.name, p.ns.Name, vhuHost, vhuPod)
	hostname := filepath.Join(d.tmp, "io.containerd.grpc.v1.cri", "sandboxes", p.id, "hostname")
	p.app, err = testbed.StartApp(p.ns.Path(), filepath.Join(d.tmp, p.name+".log"),
		[]string{"DEMO_REPO=" + d.repo, "DEMO_BIN=" + d.bin, "DEMO_L3FWD=" + d.l3fwd, "DEMO_PKTGEN_MODE=" + d.cfg.pktgenMode},
		filepath.Join(d.repo, "demo", "pod.sh"), hostname, p.name, p.id, p.prefix, peerMAC)
	return err
}

// stopApp stops the pod's app and removes its DPDK runtime directory (EAL
// never does).
func (p *pod) stopApp() error {
	if p.app == nil {
		return nil
	}
	err := p.app.Stop()
	return errors.Join(err, os.RemoveAll(testbed.DPDKRuntimeDir(p.prefix)))
}

// running reports whether the pod's app runs.
func (p *pod) running() bool { return p.app != nil && p.app.Running() }

// waitLog waits until the pod's output matches re.
func (d *demo) waitLog(p *pod, re *regexp.Regexp) (string, error) {
	log, err := p.app.WaitOutput(d.ctx, re, 30*time.Second)
	if err != nil {
		return "", fmt.Errorf("the %s pod: %w", p.name, err)
	}
	return log, nil
}

// linesMatching are the lines of s that re matches, at most the last n.
func linesMatching(s string, re *regexp.Regexp, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-n):], "\n")
}
