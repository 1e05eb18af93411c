package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// ovsNetconf is the notes' NetworkAttachmentDefinition config, with the
// name Multus injects.
const ovsNetconf = `{"cniVersion":"0.3.0","type":"userspace","name":"userspace-ovs-net-1","host":{"engine":"ovs-dpdk","iftype":"vhostuser"}}`

func (d *demo) startOVS() error {
	d.out.Step("Start a private OVS-DPDK (no hugepages) in %s", d.tmp)
	d.out.Say("its own network namespace, so that the netdev datapath's tap devices (ovs-netdev, br0) clash with nothing;")
	d.out.Say("every path of the OVS tools (OVS_RUNDIR, OVS_DBDIR...) in its directory: the system's OVS is never touched")
	var err error
	d.ovs, err = testbed.StartOVS(testbed.OVSOptions{BaseDir: d.tmp, Echo: func(argv []string) { d.out.Cmd(argv...) }})
	if err != nil {
		return err
	}
	pids := d.ovs.PIDs()
	d.out.OK("ovsdb-server and ovs-vswitchd-dpdk pids %v, dpdk_initialized=true, PMD on CPU 1", pids)
	d.out.Say("the administrator's bridge, which the notes assume:")
	if err := d.vsctlShow("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev"); err != nil {
		return err
	}

	d.out.Step("Point the plugin at this switch: a private node policy (USERSPACE_CNI_POLICY)")
	return d.writePolicy(d.ovs.PluginPolicy(d.tmp), "policy.json",
		"(every other field keeps its default: sockets stay under "+vhuHost+", where the notes' pods look)",
		"ovsdbSocketDirs", "ovsdbSocket", "ovsRunDir", "stateDir", "shortSocketDir", "logDirs")
}

// vsctlShow prints an ovs-vsctl command in the short form a user types,
// runs it and prints its output.
func (d *demo) vsctlShow(args ...string) error {
	d.out.Cmd(append([]string{"ovs-vsctl"}, args...)...)
	res, err := d.ovs.Vsctl(args...)
	d.out.Indent(res)
	return err
}

// writePolicy writes p to the run's directory and shows the fields the
// demo set, then note.
func (d *demo) writePolicy(p *policy.Policy, file, note string, shown ...string) error {
	path := filepath.Join(d.tmp, file)
	if err := testbed.WritePolicy(p, nil, path); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	data, _ := json.Marshal(p)
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	lines := []string{"{"}
	for i, k := range shown {
		sep := ","
		if i == len(shown)-1 {
			sep = ""
		}
		lines = append(lines, fmt.Sprintf("  %q: %s%s", k, all[k], sep))
	}
	d.out.Say("%s, of which the demo set:", path)
	d.out.Indent(strings.Join(append(lines, "}"), "\n"))
	d.out.Say("%s", note)
	return nil
}

func (d *demo) addOVSPods() error {
	d.out.Step("Create the two pod sandboxes and ADD their attachments, as Multus delegates")
	if _, err := os.Stat(vhuPod); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(vhuPod, 0o755); err != nil {
			return err
		}
		d.createdVHU = true
		d.out.Say("created the mount point %s (removed again at the end)", vhuPod)
	}
	if _, err := os.Stat("/etc/hostname"); err != nil {
		return fmt.Errorf("/etc/hostname is the mount point of each pod's hostname file: %w", err)
	}
	for _, name := range []string{"pktgen", "l3fwd"} {
		p, err := d.newPod(name, ovsNetconf, filepath.Join(d.tmp, "policy.json"))
		if err != nil {
			return err
		}
		d.ovsPods = append(d.ovsPods, p)
		dir := filepath.Join(d.tmp, "io.containerd.grpc.v1.cri", "sandboxes", p.id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "hostname"), []byte(name+"\n"), 0o644); err != nil {
			return err
		}
		d.out.Say("pod %s: sandbox id %s, netns %s", name, p.id, p.ns.Path())
	}
	for _, p := range d.ovsPods {
		d.out.printf("\n    %sCNI ADD for the %s pod%s\n", d.out.bold, p.name, d.out.noColour)
		d.out.Say("$ echo '%s' |", p.netconf)
		d.out.Say("    CNI_COMMAND=ADD CNI_CONTAINERID=%s CNI_NETNS=%s", p.id, p.ns.Path())
		d.out.Say("    CNI_IFNAME=%s CNI_PATH=%s USERSPACE_CNI_POLICY=%s", ifName, d.bin, p.policy)
		d.out.Say("    CNI_ARGS='%s' bin/userspace", p.cniArgs())
		if p.name == "pktgen" {
			d.out.Say("(MAC=: the pod asked for %s in its network-selection annotation; Multus passes it on in CNI_ARGS)", pktgenMAC)
		}
		res, err := d.cni("ADD", p)
		if err != nil {
			return err
		}
		d.out.JSON(res)
		d.out.Say("the pod's directory on the host:")
		if err := d.ls(filepath.Join(vhuHost, p.id)); err != nil {
			return err
		}
		if p.name == "pktgen" {
			file := fmt.Sprintf("configData-%s-%s.json", p.id[:12], ifName)
			d.out.Say("the config data the pod's app reads (configData-<id12>-%s.json):", ifName)
			data, err := os.ReadFile(filepath.Join(vhuHost, p.id, file))
			if err != nil {
				return err
			}
			d.out.JSON(data)
		}
	}
	d.out.Say("the switch now has:")
	if err := d.vsctlShow("list-ports", "br0"); err != nil {
		return err
	}
	for _, p := range d.ovsPods {
		port := p.port()
		typ, err := d.ovs.Vsctl("get", "Interface", port, "type")
		if err != nil {
			return err
		}
		owner, err := d.ovs.Vsctl("get", "Interface", port, `external_ids:"userspace-cni/pod-name"`)
		if err != nil {
			return err
		}
		d.out.Say("%s: %s %s", port, typ, owner)
	}
	return nil
}

// port is the OVS port (and socket) name of an OVS pod's attachment.
func (p *pod) port() string {
	return configdata.DefaultSocketName(netconf.IfTypeVhostUser, p.id, ifName)
}

// ls prints ls -l of dir, as a user would look.
func (d *demo) ls(dir string) error {
	out, err := exec.Command("ls", "-l", dir).CombinedOutput()
	d.out.Indent(string(out))
	if err != nil {
		return fmt.Errorf("ls -l %s: %w", dir, err)
	}
	return nil
}

func (d *demo) ovsPod(name string) *pod {
	for _, p := range d.ovsPods {
		if p.name == name {
			return p
		}
	}
	panic("no OVS pod " + name) // the demo's own names
}

var (
	l3fwdReady  = regexp.MustCompile(`entering main loop|L3FWD: .*main loop`)
	l3fwdMAC    = regexp.MustCompile(`Address: ?((?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2})`)
	pktgenReady = regexp.MustCompile(`NIC statistics for port 0`)
	podCommand  = regexp.MustCompile(`^pod[$>]`)
)

func (d *demo) runOVSPods() error {
	l3, pg := d.ovsPod("l3fwd"), d.ovsPod("pktgen")
	d.out.Step("Start the l3fwd pod with the notes' command")
	if err := d.startApp(l3, ""); err != nil {
		return err
	}
	log, err := d.waitLog(l3, l3fwdReady)
	if err != nil {
		return err
	}
	d.out.Indent(linesMatching(log, podCommand, 10))
	m := l3fwdMAC.FindStringSubmatch(log)
	if m == nil {
		return errors.New("l3fwd printed no port address")
	}
	mac := m[1]
	d.out.OK("l3fwd forwards on lcore 0 (CPU 0); its port's MAC is %s, it routes 198.18.0.0/24 back out port 0 to %s", mac, pktgenMAC)

	d.out.Step("Start the pktgen pod: dpdk-testpmd in %s mode, as the packet generator", d.cfg.pktgenMode)
	if err := d.startApp(pg, mac); err != nil {
		return err
	}
	if log, err = d.waitLog(pg, pktgenReady); err != nil {
		return err
	}
	d.out.Indent(linesMatching(log, podCommand, 10))
	if d.cfg.pktgenMode == "txonly" {
		d.out.OK("testpmd sends 64-byte UDP packets %s -> %s, 198.18.0.1 -> 198.18.0.2; l3fwd routes 198.18.0.0/24 out port 0 to %s",
			pktgenMAC, mac, pktgenMAC)
	} else {
		d.out.OK("testpmd's flowgen sends 64-byte UDP packets and counts what comes back")
		d.out.Say("its addresses are fixed in DPDK 22.11: 00:01:02:03:04:00 -> 00:01:02:03:04:01, 10.254.0.0 -> 10.253.0.0.")
		d.out.Say("br0 floods them (unknown destination MAC) to l3fwd, which routes what its table lacks back out")
		d.out.Say("the port it came in on (port 0) to --eth-dest, %s; br0 floods that to pktgen too.", pktgenMAC)
	}
	d.out.Say("lcores: testpmd main lcore 0 and forwarding lcore 1 and l3fwd's lcore 0 all on CPU 0; the switch's PMD has CPU 1")
	return nil
}

// drops is OVS's ovs_tx_failure_drops of port name (0 before it reports).
func (d *demo) drops(name string) uint64 {
	out, err := d.ovs.Vsctl("get", "Interface", name, "statistics:ovs_tx_failure_drops")
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.Trim(out, `"`), 10, 64)
	return v
}

func (d *demo) watchCounters() error {
	l3, pg := d.ovsPod("l3fwd"), d.ovsPod("pktgen")
	d.out.Step("Watch the counters: packets must cross br0 both ways")
	d.out.Say("from the switch (%d samples, 5 s apart: OVS refreshes Interface statistics every 5 s):", d.cfg.samples)
	d.out.Say("  pktgen->br0, l3fwd->br0: packets br0 received from each pod (its datapath flows, ovs-appctl dpctl/dump-flows)")
	d.out.Say("  drops->l3fwd, drops->pktgen: packets br0 could not hand to a busy pod (Interface statistics ovs_tx_failure_drops)")
	d.out.Say("from the pktgen pod: testpmd's own TX and RX counters (RX: l3fwd's packets arriving back)")
	d.out.Say("l3fwd forwards only what it receives, so l3fwd->br0 rising means pktgen's packets reached it")
	row := "    %-6v %13v %13v %14v %14v %13v %13v\n"
	d.out.printf(row, "sample", "pktgen->br0", "l3fwd->br0", "drops->l3fwd", "drops->pktgen", "testpmd TX", "testpmd RX")
	var fromPG, fromL3, dropL3, dropPG uint64
	var st testbed.PortStats
	for s := 1; s <= d.cfg.samples; s++ {
		if err := d.nap(5 * time.Second); err != nil {
			return err
		}
		for _, p := range []*pod{pg, l3} {
			if !p.running() {
				return fmt.Errorf("the %s pod exited:\n%s", p.name, p.app.Output())
			}
		}
		var err error
		if fromPG, err = d.ovs.PacketsFrom(pg.port()); err != nil {
			return err
		}
		if fromL3, err = d.ovs.PacketsFrom(l3.port()); err != nil {
			return err
		}
		dropL3, dropPG = d.drops(l3.port()), d.drops(pg.port())
		st = testbed.ParseTestPMDStats(testbed.TailFile(pg.app.Log, 64<<10))[0]
		d.out.printf(row, s, fromPG, fromL3, dropL3, dropPG, st.TxPackets, st.RxPackets)
	}
	d.out.Say("$ %s   # l3fwd's port, for example", quote([]string{"ovs-vsctl", "get", "Interface", l3.port(), "statistics"}))
	stats, err := d.ovs.Vsctl("get", "Interface", l3.port(), "statistics")
	if err != nil {
		return err
	}
	d.out.Indent(stats)
	d.out.Say("(OVS 3.1 counts packets only on dpdkvhostuserclient ports; on the notes' dpdkvhostuser ports, where it is the")
	d.out.Say(" vhost-user server, it reports only its own drop counters: hence the datapath flows above)")
	var failed []string
	if fromPG == 0 {
		failed = append(failed, "br0 received nothing from pktgen")
	}
	if fromL3 == 0 {
		failed = append(failed, "br0 received nothing from l3fwd: pktgen's packets did not reach it")
	}
	// txonly never reads its receive queue: arrival cannot be counted in
	// the pod, only that br0 sent l3fwd's packets towards it.
	if d.cfg.pktgenMode == "txonly" && dropPG == 0 {
		failed = append(failed, "br0 sent nothing from l3fwd towards pktgen")
	}
	if d.cfg.pktgenMode == "flowgen" && st.RxPackets == 0 {
		failed = append(failed, "testpmd received nothing back from l3fwd")
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	if d.cfg.pktgenMode == "txonly" {
		d.out.OK("pktgen -> l3fwd: l3fwd sent %d packets back into br0; l3fwd -> pktgen: br0 forwarded them towards pktgen", fromL3)
		d.out.Say("(txonly never reads its receive queue: once its ring is full, br0 counts l3fwd's packets as drops->pktgen)")
	} else {
		d.out.OK("pktgen -> l3fwd -> pktgen: l3fwd sent %d packets back into br0, and testpmd received %d of them", fromL3, st.RxPackets)
	}
	d.out.Say("(rates are not the point: three busy pollers share two CPUs here, so most packets are dropped)")
	return nil
}

var podGoodbye = regexp.MustCompile(`^(Closing port|Done|Bye|Port 0: ).*`)

func (d *demo) delOVSPods() error {
	d.out.Step("Stop the pods, then DEL their attachments through the plugin (as the runtime does)")
	for _, name := range []string{"pktgen", "l3fwd"} {
		p := d.ovsPod(name)
		d.out.Say("stopping the %s pod (pid %d, SIGTERM)", name, p.app.PID())
		if err := p.stopApp(); err != nil {
			return err
		}
		d.out.Indent(linesMatching(p.app.Output(), podGoodbye, 3))
	}
	for _, p := range d.ovsPods {
		d.out.Say("$ CNI_COMMAND=DEL ... (same environment and stdin) bin/userspace   # %s", p.name)
		if _, err := d.cni("DEL", p); err != nil {
			return err
		}
	}
	var left []string
	d.out.Cmd("ovs-vsctl", "list-ports", "br0")
	ports, err := d.ovs.Vsctl("list-ports", "br0")
	if err != nil {
		return err
	}
	if ports != "" {
		d.out.Indent(ports)
		left = append(left, "ports on br0: "+ports)
	} else {
		d.out.Say("  (none)")
	}
	for _, p := range d.ovsPods {
		if _, err := os.Stat(filepath.Join(vhuHost, p.id)); err == nil {
			left = append(left, filepath.Join(vhuHost, p.id))
		}
	}
	if recs := d.records(); len(recs) > 0 {
		left = append(left, "plugin records: "+strings.Join(recs, " "))
	}
	if len(left) > 0 {
		return fmt.Errorf("DEL left: %s", strings.Join(left, "; "))
	}
	d.out.OK("no port on br0, no %s/<id> directory, no record in the plugin's state dir", vhuHost)
	return nil
}

// records are the plugin's attachment records in the run's state dir.
func (d *demo) records() []string {
	var recs []string
	_ = filepath.WalkDir(filepath.Join(d.tmp, "state"), func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasSuffix(path, ".json") {
			recs = append(recs, path)
		}
		return nil
	})
	return recs
}
