// Command vpp-app runs in a VPP client pod: it reads the attachments the
// userspace CNI plugin published for the pod, connects to the pod's own VPP
// and creates each memif (the pod side, normally the slave) on the
// published socket with the IPAM addresses and routes, brings it up and
// prints what it configured. Running it again changes nothing that is
// already right.
//
// Sources, the first given wins: -dir (configData-*.json), -notes-dir (the
// notes' remote-/addData- files), -annotations; with none given, the
// notes' /var/run/vpp/cni/data if it exists, else /etc/podinfo/annotations.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/podvpp"
	"github.com/userspace-cni/userspace/pkg/sandboxid"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vpp-app:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vpp-app", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: vpp-app [flags]\n\nSets up the pod's memif interfaces in the pod's own VPP from the userspace CNI plugin's config data.\n\nflags:\n")
		fs.PrintDefaults()
	}
	var (
		opts      configdata.Options
		socket    string
		ifNames   string
		mountinfo string
	)
	fs.StringVar(&socket, "api-socket", configdata.DefaultVPPAPISocket, "the pod's VPP API `socket`")
	fs.StringVar(&opts.AnnotationsFile, "annotations", "", "downward-API annotations `file` (default "+configdata.DefaultAnnotationsFile+")")
	fs.StringVar(&opts.Dir, "dir", "", "read configData-*.json in `DIR`; "+sandboxid.Placeholder+" in it stands for the pod sandbox's id")
	fs.StringVar(&opts.NotesDataDir, "notes-dir", "", "read the notes' remote-/addData- files in `DIR` (default "+configdata.DefaultNotesDataDir+
		" when it exists); "+sandboxid.Placeholder+" as for -dir, e.g. /var/run/vpp/cni/"+sandboxid.Placeholder)
	fs.StringVar(&mountinfo, "mountinfo", sandboxid.DefaultMountinfo, "mountinfo `file` the sandbox id is read from, as get-prefix.sh does")
	fs.StringVar(&opts.NotesSocketDir, "notes-socket-dir", configdata.DefaultNotesSocketDir, "socket `DIR` for the notes' files")
	fs.StringVar(&ifNames, "if", "", "comma-separated interfaces to set up and wait for (default: all)")
	fs.DurationVar(&opts.Wait, "wait", 60*time.Second, "how long to wait for the config data and for VPP's API socket")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if ifNames != "" {
		opts.IfNames = strings.Split(ifNames, ",")
	}
	if err := sandboxid.Expand(mountinfo, &opts.Dir, &opts.NotesDataDir); err != nil {
		return err
	}
	if opts.Dir == "" && opts.NotesDataDir == "" && opts.AnnotationsFile == "" {
		opts.AnnotationsFile = configdata.DefaultAnnotationsFile
		if _, err := os.Stat(configdata.DefaultNotesDataDir); err == nil {
			opts.NotesDataDir = configdata.DefaultNotesDataDir
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Wait)
	defer cancel()
	atts, err := configdata.Load(ctx, opts)
	if err != nil {
		return err
	}
	c, err := podvpp.Connect(ctx, socket, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	var errs []error
	for i := range atts {
		applied, err := c.Apply(&atts[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(stdout, applied)
	}
	return errors.Join(errs...)
}
