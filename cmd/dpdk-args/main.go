// Command dpdk-args gives a DPDK app in a pod (testpmd, l3fwd, pktgen) the
// EAL arguments for the interfaces the userspace CNI plugin attached:
//
//	dpdk-args [flags]                        prints them on one line
//	dpdk-args [flags] exec -- APP [EAL args] [-- APP args]
//	                                          runs APP with them added
//
// It reads the config data the plugin published: the downward-API
// annotations file (default), the configData-*.json files of a directory
// (-dir, or -sandbox-dir for the notes' /vhu/<sandbox id> layout), or the
// notes' VPP files (-notes-dir).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/dpdkargs"
	"github.com/userspace-cni/userspace/pkg/sandboxid"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr, syscall.Exec); err != nil {
		fmt.Fprintln(os.Stderr, "dpdk-args:", err)
		os.Exit(1)
	}
}

type execFunc func(argv0 string, argv, env []string) error

func run(args []string, stdout, stderr io.Writer, execve execFunc) error {
	fs := flag.NewFlagSet("dpdk-args", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: dpdk-args [flags] [exec -- APP [EAL args] [-- APP args]]\n\n"+
			"Prints the EAL --vdev arguments for the pod's userspace interfaces (ports numbered\n"+
			"in interface-name order), or runs APP with them added before its \"--\".\n\nflags:\n")
		fs.PrintDefaults()
	}
	var (
		opts       configdata.Options
		sandboxDir string
		mountinfo  string
		ifNames    string
		quiet      bool
	)
	fs.StringVar(&opts.AnnotationsFile, "annotations", configdata.DefaultAnnotationsFile, "downward-API annotations `file`")
	fs.StringVar(&opts.Dir, "dir", "", "read configData-*.json in `DIR` instead (sockets are resolved there); "+sandboxid.Placeholder+" in it stands for the pod sandbox's id")
	fs.StringVar(&sandboxDir, "sandbox-dir", "", "short for -dir `BASE`/"+sandboxid.Placeholder+" (the notes' OVS pods: -sandbox-dir /vhu)")
	fs.StringVar(&mountinfo, "mountinfo", sandboxid.DefaultMountinfo, "mountinfo `file` the sandbox id is read from, as get-prefix.sh does")
	fs.StringVar(&opts.NotesDataDir, "notes-dir", "", "read the notes' remote-/addData- files in `DIR` instead; "+sandboxid.Placeholder+" as for -dir")
	fs.StringVar(&opts.NotesSocketDir, "notes-socket-dir", configdata.DefaultNotesSocketDir, "socket `DIR` for -notes-dir")
	fs.StringVar(&ifNames, "if", "", "comma-separated interfaces to use and wait for (default: all)")
	fs.DurationVar(&opts.Wait, "wait", 60*time.Second, "how long to wait for the config data")
	fs.BoolVar(&quiet, "q", false, "do not describe the ports on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	rest := fs.Args()
	var app []string
	if len(rest) > 0 {
		if rest[0] != "exec" {
			return fmt.Errorf("unknown command %q (want exec)", rest[0])
		}
		app = rest[1:]
		if len(app) > 0 && app[0] == "--" {
			app = app[1:]
		}
		if len(app) == 0 {
			return errors.New("exec: no application given")
		}
	}
	if ifNames != "" {
		opts.IfNames = strings.Split(ifNames, ",")
	}
	if sandboxDir != "" {
		if opts.Dir != "" {
			return errors.New("give -dir or -sandbox-dir, not both")
		}
		opts.Dir = filepath.Join(sandboxDir, sandboxid.Placeholder)
	}
	if err := sandboxid.Expand(mountinfo, &opts.Dir, &opts.NotesDataDir); err != nil {
		return err
	}
	atts, err := configdata.Load(context.Background(), opts)
	if err != nil {
		return err
	}
	eal, err := dpdkargs.EAL(atts)
	if err != nil {
		return err
	}
	if !quiet {
		for i, a := range atts {
			fmt.Fprintf(stderr, "dpdk-args: port %d is %s (%s, %s)\n", i, a.IfName, a.Config.IfType, a.SocketPath)
		}
	}
	if app == nil {
		_, err := fmt.Fprintln(stdout, strings.Join(eal, " "))
		return err
	}
	path, err := exec.LookPath(app[0])
	if err != nil {
		return err
	}
	return execve(path, dpdkargs.Insert(app, eal), os.Environ())
}
