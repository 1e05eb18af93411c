package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/userspace-cni/userspace/tests/testbed"
)

// cleanup stops and removes everything the run started and created, in
// the order the runtime would (apps, then DEL while the switches still run,
// then the switches), checks that nothing is left, and returns the exit
// status.
func (d *demo) cleanup(rc int) int {
	if d.tmp == "" { // nothing was created yet
		return rc
	}
	o := d.out
	switch rc {
	case 0:
		o.Step("Clean up")
	case 130, 143:
		o.Step("Interrupted: clean up")
	default:
		o.Step("Clean up after the failure (exit status %d)", rc)
	}
	var errs []error
	for _, p := range d.ovsPods {
		if p.running() {
			o.Say("stopping the %s pod (pid %d)", p.name, p.cmd.Process.Pid)
		}
		errs = append(errs, p.stopApp())
	}
	for _, p := range d.vppPods {
		if p.vpp != nil {
			errs = append(errs, p.vpp.Stop())
		}
	}
	errs = append(errs, d.keepLogs())
	for _, p := range append(d.ovsPods, d.vppPods...) {
		if p.added {
			o.Say("CNI DEL for the %s pod (interrupted before the demo's own DEL)", p.name)
			if _, err := d.cni("DEL", p); err != nil {
				o.Say("DEL failed: %v", err)
			}
		}
	}
	if d.vppHost != nil {
		if d.vppHost.PID() != 0 {
			o.Say("stopping the host VPP (pid %d)", d.vppHost.PID())
		}
		errs = append(errs, d.vppHost.Stop())
	}
	if d.ovs != nil {
		o.Say("stopping the private ovs-vswitchd and ovsdb-server")
		errs = append(errs, d.ovs.Stop())
	}
	for _, p := range append(d.ovsPods, d.vppPods...) {
		errs = append(errs, p.ns.Close(),
			os.RemoveAll(filepath.Join(vhuHost, p.id)), os.RemoveAll(filepath.Join(vppNotes, p.id)))
	}
	if d.createdVHU {
		errs = append(errs, os.Remove(vhuPod))
	}
	errs = append(errs, os.RemoveAll(d.tmp))
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "    clean-up: %v\n", err)
		rc = max(rc, 1)
	}

	if left := d.leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "    %sleft behind:%s %s\n", o.red, o.noColour, strings.Join(left, "; "))
		rc = max(rc, 1)
	} else {
		o.OK("no process, namespace, mount, DPDK runtime dir, VPP shared memory, socket or temp dir of this run is left")
	}
	if rc == 0 {
		o.printf("\n%sDemo passed.%s\n", o.green, o.noColour)
	} else {
		fmt.Fprintf(os.Stderr, "\n%sDemo failed (exit %d).%s\n", o.red, rc, o.noColour)
	}
	return rc
}

// keepLogs copies the switch's, the VPPs' and the pods' logs to
// DEMO_KEEP_LOGS, if set, before a Stop removes them; again later
// overwrites them with longer ones.
func (d *demo) keepLogs() error {
	dst := d.cfg.keepLogs
	if dst == "" {
		return nil
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	logs := map[string]string{} // source -> name in dst
	pods, _ := filepath.Glob(filepath.Join(d.tmp, "*.log"))
	for _, f := range pods {
		logs[f] = filepath.Base(f)
	}
	if d.ovs != nil {
		ovs, _ := filepath.Glob(filepath.Join(d.ovs.Dir, "*.log"))
		for _, f := range ovs {
			logs[f] = filepath.Base(f)
		}
	}
	vpps := map[string]string{}
	if d.vppHost != nil {
		vpps["host"] = d.vppHost.Dir
	}
	for _, p := range d.vppPods {
		if p.vpp != nil {
			vpps[p.name] = p.vpp.Dir
		}
	}
	for name, dir := range vpps {
		logs[filepath.Join(dir, "vpp.log")] = "vpp-" + name + ".log"
		logs[filepath.Join(dir, "stdout.log")] = "vpp-" + name + "-stdout.log"
	}
	var errs []error
	for src, name := range logs {
		data, err := os.ReadFile(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // a VPP stopped before clean-up took its directory along
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, name), data, 0o644)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// leftovers lists what of this run still exists: processes whose command
// line names it, network namespaces, mounts, DPDK runtime dirs, VPP shared
// memory, the pods' directories and the temporary directory.
func (d *demo) leftovers() []string {
	// Trailing separators: run ids differ in length, and one must not
	// match another that it begins.
	marks := []string{d.tmp + "/", "usp-demo-" + d.runID + "-"}
	prefixes := []string{}
	var netnses []string
	for _, p := range append(d.ovsPods, d.vppPods...) {
		netnses = append(netnses, p.ns.Name)
		prefixes = append(prefixes, p.prefix)
	}
	if d.ovs != nil {
		marks = append(marks, d.ovs.FilePrefix)
		netnses = append(netnses, d.ovs.FilePrefix)
		prefixes = append(prefixes, d.ovs.FilePrefix)
	}
	var left []string
	self := strconv.Itoa(os.Getpid())
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var procs []string
	for _, f := range cmdlines {
		pid := filepath.Base(filepath.Dir(f))
		b, err := os.ReadFile(f)
		if err != nil || pid == self {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		n, _ := strconv.Atoi(pid)
		if containsAny(cmd, marks) && testbed.ProcessRunning(n) {
			procs = append(procs, fmt.Sprintf("%s(%s)", pid, strings.Fields(cmd)[0]))
		}
	}
	if len(procs) > 0 {
		left = append(left, "processes: "+strings.Join(procs, " "))
	}
	for _, ns := range netnses {
		if exists(filepath.Join("/var/run/netns", ns)) {
			left = append(left, "netns "+ns)
		}
	}
	for _, p := range prefixes {
		if exists(testbed.DPDKRuntimeDir(p)) {
			left = append(left, testbed.DPDKRuntimeDir(p))
		}
	}
	var vpps []*testbed.VPP
	if d.vppHost != nil {
		vpps = append(vpps, d.vppHost)
	}
	for _, p := range d.vppPods {
		if p.vpp != nil {
			vpps = append(vpps, p.vpp)
		}
	}
	for _, v := range vpps {
		if shm, _ := filepath.Glob(filepath.Join("/dev/shm", v.Prefix+"-*")); len(shm) > 0 {
			left = append(left, "VPP shared memory: "+strings.Join(shm, " "))
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(l); len(f) > 4 && containsAny(l, marks) {
				left = append(left, "mount "+f[4])
			}
		}
	}
	for _, p := range d.ovsPods {
		if exists(filepath.Join(vhuHost, p.id)) {
			left = append(left, filepath.Join(vhuHost, p.id))
		}
	}
	for _, p := range d.vppPods {
		if exists(filepath.Join(vppNotes, p.id)) {
			left = append(left, filepath.Join(vppNotes, p.id))
		}
	}
	if d.createdVHU && exists(vhuPod) {
		left = append(left, vhuPod)
	}
	if exists(d.tmp) {
		left = append(left, d.tmp)
	}
	return left
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
