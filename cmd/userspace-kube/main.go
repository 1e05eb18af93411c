// Command userspace-kube is the userspace CNI plugin's Kubernetes helper.
// The plugin runs it, from the directory it is installed in, for the ADD and
// DEL of a network whose configuration names a kubeconfig when the node
// agent does not answer for it, and asks it over stdin and stdout to read
// the pod and publish or remove the attachment's configuration data
// (package podapi). It is a process of its own so that the plugin binary
// does not link client-go, whose start-up every other plugin call would
// pay. It is not meant to be run by hand.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/userspace-cni/userspace/pkg/kube"
	_ "github.com/userspace-cni/userspace/pkg/shortlived"
)

func main() {
	// Short-lived, as the plugin is: collecting garbage costs more than
	// the little it allocates (bounded anyway by the memory limit), and
	// pkg/shortlived runs it on one P with its heap populated.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(256 << 20)
	if len(os.Args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: userspace-kube (run by the userspace CNI plugin; requests on stdin)")
		os.Exit(2)
	}
	if err := kube.Serve(os.Stdin, os.Stdout, &kube.Clients{}); err != nil {
		fmt.Fprintln(os.Stderr, "userspace-kube:", err)
		os.Exit(1)
	}
}
