package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/userspace-cni/userspace/tests/testbed"
)

// prepare installs what is missing and builds what the scenarios run. On a
// fresh machine these steps take minutes (packages, Go modules, l3fwd), so
// each says so and reports progress.
func (d *demo) prepare() error {
	var err error
	if d.repo, err = findRepo(); err != nil {
		return err
	}
	d.out.Step("Install missing Debian packages")
	pkgs := append(testbed.RequiredPackages(), testbed.L3fwdPackages()...)
	if missing := testbed.MissingPackages(pkgs...); len(missing) > 0 {
		d.out.Say("missing: %s (a first install takes minutes)", strings.Join(missing, " "))
		if err := testbed.InstallPackages(d.out.Writer(), missing...); err != nil {
			return err
		}
	} else {
		d.out.Say("all present: %s", strings.Join(pkgs, " "))
	}
	// sudo's secure_path drops /usr/local/go/bin, where Go's own installer
	// puts it; the builds below need go.
	if _, err := exec.LookPath("go"); err != nil {
		if _, serr := os.Stat("/usr/local/go/bin/go"); serr != nil {
			return fmt.Errorf("go is needed to build the plugin (see go.mod for the version): %w", err)
		}
		if err := os.Setenv("PATH", os.Getenv("PATH")+":/usr/local/go/bin"); err != nil {
			return err
		}
	}

	if d.tmp, err = os.MkdirTemp("/tmp", "usp-demo-"); err != nil {
		return err
	}
	d.runID = strings.TrimPrefix(filepath.Base(d.tmp), "usp-demo-")
	d.bin = filepath.Join(d.tmp, "bin")

	d.out.Step("Build the plugin, the pod-side helpers (dpdk-args, vpp-app) and host-local (the notes' VPP network's IPAM)")
	d.out.Say("(the first build downloads and compiles the Go modules: a few minutes; later ones take seconds)")
	if err := os.Chdir(d.repo); err != nil {
		return err
	}
	for _, name := range testbed.BinaryNames {
		d.out.Cmd(testbed.BuildBinaryArgs(d.bin, name)...)
		stop := testbed.Progress(d.out.Writer(), "building "+name, 15*time.Second)
		err := testbed.BuildBinary(d.bin, name)
		stop()
		if err != nil {
			return err
		}
		if err := d.ctx.Err(); err != nil {
			return err
		}
	}

	d.out.Step("Get a real VPP 25.10 (hack/vpp-assets.sh)")
	if os.Getenv(testbed.VPPDirEnv) == "" {
		d.out.Say("an installed VPP, else the relocatable build in ../shared/vpp (seconds to unpack, once),")
		d.out.Say("else a build from its source: 20 to 60 minutes the first time, with progress below; cached after")
	}
	in, err := testbed.FindVPP()
	if err != nil {
		return fmt.Errorf("no VPP for the notes' VPP scenario (see README: Getting VPP): %w", err)
	}
	d.out.OK("VPP %s (plugins in %s)", in.VPP, in.PluginDir)

	d.out.Step("Build DPDK's l3fwd from Debian's dpdk-doc sources (cached by DPDK version)")
	path, cached, err := testbed.BuildL3fwd(d.out.Writer())
	if err != nil {
		return err
	}
	d.l3fwd = path
	if cached {
		d.out.Say("cached: %s", path)
	} else {
		d.out.Say("built and cached: %s", path)
	}
	return nil
}
