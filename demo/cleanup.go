package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
			o.Say("stopping the %s pod (pid %d)", p.name, p.app.PID())
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
	if d.cfg.keepLogs == "" {
		return nil
	}
	dirs := [][2]string{{"", d.tmp}} // a name prefix in DEMO_KEEP_LOGS, a directory
	if d.ovs != nil {
		dirs = append(dirs, [2]string{"", d.ovs.Dir})
	}
	for _, v := range d.vpps() {
		dirs = append(dirs, [2]string{v.name + "-", v.vpp.Dir})
	}
	errs := []error{os.MkdirAll(d.cfg.keepLogs, 0o755)}
	for _, pd := range dirs {
		prefix, dir := pd[0], pd[1]
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, f := range logs {
			data, err := os.ReadFile(f)
			if err == nil {
				err = os.WriteFile(filepath.Join(d.cfg.keepLogs, prefix+filepath.Base(f)), data, 0o644)
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// namedVPP is a VPP the demo started, by what it serves.
type namedVPP struct {
	name string
	vpp  *testbed.VPP
}

// vpps are the VPPs started so far: the host's and the pods'.
func (d *demo) vpps() []namedVPP {
	var out []namedVPP
	if d.vppHost != nil {
		out = append(out, namedVPP{"vpp-host", d.vppHost})
	}
	for _, p := range d.vppPods {
		if p.vpp != nil {
			out = append(out, namedVPP{"vpp-" + p.name, p.vpp})
		}
	}
	return out
}

// leftovers lists what of this run still exists (testbed.Leftovers):
// processes and mounts that name it, network namespaces, DPDK runtime
// dirs, VPP shared memory, the pods' directories and the temporary
// directory.
func (d *demo) leftovers() []string {
	// Trailing separators: run ids differ in length, and one must not
	// match another that it begins.
	marks := []string{d.tmp + "/", "usp-demo-" + d.runID + "-"}
	paths := []string{d.tmp}
	for _, p := range append(d.ovsPods, d.vppPods...) {
		paths = append(paths, p.ns.Path(), testbed.DPDKRuntimeDir(p.prefix),
			filepath.Join(vhuHost, p.id), filepath.Join(vppNotes, p.id))
	}
	if d.ovs != nil {
		marks = append(marks, d.ovs.FilePrefix)
		paths = append(paths, (&testbed.NetNS{Name: d.ovs.FilePrefix}).Path(), testbed.DPDKRuntimeDir(d.ovs.FilePrefix))
	}
	for _, v := range d.vpps() {
		paths = append(paths, filepath.Join("/dev/shm", v.vpp.Prefix+"-*"))
	}
	if d.createdVHU {
		paths = append(paths, vhuPod)
	}
	return testbed.Leftovers(marks, paths...)
}
