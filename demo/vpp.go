package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// vppNetconf is the notes' memif-network: memif masters in the host VPP's
// bridge domain 4, slaves in the pods' VPPs, host-local IPAM.
const vppNetconf = `{"cniVersion":"0.3.1","type":"userspace","name":"memif-network","host":{"engine":"vpp","iftype":"memif","netType":"bridge","memif":{"role":"master","mode":"ethernet"},"bridge":{"bridgeId":4}},"container":{"engine":"vpp","iftype":"memif","netType":"interface","memif":{"role":"slave","mode":"ethernet"}},"ipam":{"type":"host-local","subnet":"172.22.0.0/24","rangeStart":"172.22.0.2","rangeEnd":"172.22.0.254","routes":[{"dst":"0.0.0.0/0"}],"gateway":"172.22.0.1"}}`

// vppNotes is where the notes' pods find their files, per sandbox id.
const vppNotes = "/var/run/vpp/cni"

func (d *demo) startHostVPP() error {
	d.out.Step("The notes' VPP scenario: a private host VPP (no hugepages, no DPDK) with bridge domain 4")
	var err error
	if d.vppHost, err = testbed.StartVPP(testbed.VPPOptions{BaseDir: d.tmp}); err != nil {
		return err
	}
	d.out.Cmd("vpp", "-c", filepath.Join(d.vppHost.Dir, "startup.conf"))
	conf, _ := os.ReadFile(filepath.Join(d.vppHost.Dir, "startup.conf"))
	d.out.Indent(string(conf))
	d.out.OK("host VPP pid %d, API socket %s", d.vppHost.PID(), d.vppHost.APISocket)
	d.out.Say("the administrator's bridge domain, which the notes assume:")
	d.out.Cmd("vppctl", "create", "bridge-domain", "4")
	out, err := d.vppHost.Vppctl("create", "bridge-domain", "4")
	d.out.Indent(out)
	if err != nil {
		return err
	}
	p := policy.Default()
	p.StateDir = filepath.Join(d.tmp, "state")
	p.ShortSocketDir = filepath.Join(d.tmp, "s")
	p.LogDirs = []string{filepath.Join(d.tmp, "log")}
	d.out.Say("the plugin's node policy points at its API socket:")
	return d.writePolicy(testbed.WithVPP(p, d.vppHost.APISocket), "vpp-policy.json",
		"(every other field keeps its default: /var/run/vpp/cni, where the notes' VPP pods look, is allowed)",
		"vppApiSocketDirs", "vppApiSocket", "stateDir", "shortSocketDir", "logDirs")
}

func (d *demo) addVPPPods() error {
	d.out.Step("Create two VPP pod sandboxes and ADD them to the notes' memif-network, as Multus delegates")
	for _, name := range []string{"vpp1", "vpp2"} {
		p, err := d.newPod(name, vppNetconf, filepath.Join(d.tmp, "vpp-policy.json"))
		if err != nil {
			return err
		}
		d.vppPods = append(d.vppPods, p)
	}
	for _, p := range d.vppPods {
		d.out.Say("pod %s: sandbox id %s, netns %s", p.name, p.id, p.ns.Path())
		d.out.Say("$ echo '%s' |", p.netconf)
		d.out.Say("    CNI_COMMAND=ADD CNI_CONTAINERID=%s CNI_PATH=%s ... bin/userspace", p.id, d.bin)
		res, err := d.cni("ADD", p)
		if err != nil {
			return err
		}
		var r struct {
			IPs []struct{ Address string } `json:"ips"`
		}
		if err := json.Unmarshal(res, &r); err != nil || len(r.IPs) == 0 {
			return fmt.Errorf("ADD result of the %s pod has no address (%v): %s", p.name, err, res)
		}
		d.out.Say("  address %s; the notes' files for the pod:", r.IPs[0].Address)
		if err := d.ls(filepath.Join(vppNotes, p.id)); err != nil {
			return err
		}
		if p.addr, err = netip.ParsePrefix(r.IPs[0].Address); err != nil {
			return err
		}
	}
	d.out.Say("$ vppctl show bridge-domain 4 detail   # the host VPP")
	out, err := d.vppHost.Vppctl("show", "bridge-domain", "4", "detail")
	d.out.Indent(out)
	return err
}

func (d *demo) runVPPPods() error {
	d.out.Step("Start each pod's own VPP in its network namespace and run vpp-app, as the notes' pods do")
	for _, p := range d.vppPods {
		var err error
		if p.vpp, err = testbed.StartVPP(testbed.VPPOptions{BaseDir: d.tmp, NetNS: p.ns.Path()}); err != nil {
			return err
		}
		d.out.Say("%s pod: VPP pid %d in netns %s", p.name, p.vpp.PID(), p.ns.Name)
		d.out.Say("$ vpp-app -notes-dir %s/${ID}   # in the %s pod, ID=%s...", vppNotes, p.name, p.id[:12])
		out, err := exec.Command("nsenter", "--net="+p.ns.Path(), "--", filepath.Join(d.bin, "vpp-app"),
			"-api-socket", p.vpp.APISocket, "-notes-dir", filepath.Join(vppNotes, p.id), "-wait", "30s").CombinedOutput()
		d.out.Indent(string(out))
		if err != nil {
			return fmt.Errorf("vpp-app failed in the %s pod: %w", p.name, err)
		}
	}
	for _, p := range d.vppPods {
		if err := p.vpp.WaitMemifUp("", 30*time.Second); err != nil {
			return fmt.Errorf("the %s pod's memif did not connect to the host VPP: %w", p.name, err)
		}
	}
	d.out.OK("both pods' memif slaves are connected to the host VPP's masters in bridge domain 4")
	return nil
}

func (d *demo) ping() error {
	from, to := d.vppPods[0], d.vppPods[1]
	d.out.Step("Ping from one pod's VPP to the other across bridge domain 4")
	d.out.Say("$ vppctl ping %s repeat 5 interval 0.5   # in the %s pod", to.addr.Addr(), from.name)
	sent, received, out, err := from.vpp.Ping(to.addr.Addr(), 5)
	d.out.Indent(out)
	if err != nil {
		return err
	}
	if sent != 5 || received < 4 {
		return fmt.Errorf("ping: %d of %d answered, want at least 4 of 5 (the first may be lost to ARP)", received, sent)
	}
	d.out.OK("%d of %d pings answered between the VPP pods", received, sent)
	return nil
}

func (d *demo) delVPPPods() error {
	d.out.Step("Stop the pods' VPPs, DEL both attachments, and check the host VPP")
	if err := d.keepLogs(); err != nil { // Stop takes a VPP's logs along
		return err
	}
	for _, p := range d.vppPods {
		if err := p.vpp.Stop(); err != nil {
			return err
		}
	}
	for _, p := range d.vppPods {
		d.out.Say("$ CNI_COMMAND=DEL ... bin/userspace   # %s", p.name)
		if _, err := d.cni("DEL", p); err != nil {
			return err
		}
	}
	d.out.Cmd("vppctl", "show", "interface")
	out, err := d.vppHost.Vppctl("show", "interface")
	if err != nil {
		return err
	}
	d.out.Indent(out)
	st, err := d.vppHost.State()
	if err != nil {
		return err
	}
	var left []string
	if len(st.Memifs) > 0 {
		left = append(left, fmt.Sprintf("%d memif interfaces", len(st.Memifs)))
	}
	// VPP's default socket 0 is the only memif socket registration left.
	if len(st.MemifSockets) > 1 {
		left = append(left, fmt.Sprintf("%d memif socket registrations", len(st.MemifSockets)))
	}
	for _, p := range d.vppPods {
		if _, err := os.Stat(filepath.Join(vppNotes, p.id)); err == nil {
			left = append(left, filepath.Join(vppNotes, p.id))
		}
		if socks, _ := filepath.Glob(filepath.Join(vppNotes, "shared", "memif-"+p.id[:12]+"-*")); len(socks) > 0 {
			left = append(left, strings.Join(socks, " "))
		}
	}
	if recs := d.records(); len(recs) > 0 {
		left = append(left, "plugin records: "+strings.Join(recs, " "))
	}
	if len(left) > 0 {
		return errors.New("DEL left: " + strings.Join(left, "; "))
	}
	d.out.OK("no memif, socket registration, socket file, notes directory or record is left; bridge domain 4 (the administrator's) stays")
	if err := d.keepLogs(); err != nil {
		return err
	}
	return d.vppHost.Stop()
}
