package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/cniexec"
)

// delegationEnv marks the environment of an IPAM plugin the plugin runs. A
// process of this plugin that starts with it set was started, directly or
// through other plugins, by its own IPAM delegation: it refuses at once
// instead of calling IPAM again, so no configuration can make the plugin
// call itself without end (each level holding its sandbox's lock).
const delegationEnv = "USERSPACE_CNI_DELEGATED"

// ipamTimeout bounds one IPAM plugin run: it is another process, and a hung
// one must not hold the sandbox's lock for the whole verb.
const ipamTimeout = 30 * time.Second

// refuseRecursion fails when this process runs as someone's IPAM plugin.
func refuseRecursion(getenv func(string) string) error {
	if v := getenv(delegationEnv); v != "" {
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(
			"the userspace plugin was started by its own IPAM delegation (%s=%s): an IPAM plugin must not call back into it", delegationEnv, v), "")
	}
	return nil
}

// ipamCall runs the configuration's IPAM plugin for one verb. containerID
// and ifName, when set, replace the invocation's own (GC releasing another
// attachment's address).
type ipamCall struct {
	inv         *invocation
	command     string
	containerID string
	ifName      string
}

// env is the IPAM plugin's environment: this process's, with the CNI
// variables of the invocation (from its arguments, not the process
// environment) and the delegation mark. STATUS concerns no attachment: as
// the CNI spec says, it gets CNI_COMMAND and CNI_PATH only.
func (c *ipamCall) env() []string {
	a := c.inv.args
	cid, ifName, netns := a.ContainerID, a.IfName, a.Netns
	if c.containerID != "" {
		cid, ifName, netns = c.containerID, c.ifName, ""
	}
	env := []string{}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "CNI_") && k != delegationEnv {
			env = append(env, kv)
		}
	}
	env = append(env, "CNI_COMMAND="+c.command, "CNI_PATH="+a.Path, delegationEnv+"="+c.command)
	if c.command == "STATUS" {
		return env
	}
	return append(env, "CNI_CONTAINERID="+cid, "CNI_IFNAME="+ifName, "CNI_NETNS="+netns, "CNI_ARGS="+a.Args)
}

// path finds the IPAM plugin in CNI_PATH and refuses this plugin's own
// binary under any name (a copy under another name is caught by the
// delegation mark instead).
func (c *ipamCall) path() (string, error) {
	t := c.inv.conf.IPAM.Type
	p, err := cniexec.Find(t, filepath.SplitList(c.inv.args.Path))
	if err != nil {
		return "", err
	}
	if self, err := os.Executable(); err == nil && sameFile(self, p) {
		return "", types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(
			"invalid ipam.type %q: %s is the userspace plugin itself, which is not an IPAM plugin", t, p), "")
	}
	return p, nil
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// cmd is the run of the IPAM plugin: the plugin's error, when it prints
// one, comes back as the *types.Error it is; its stderr goes to ours.
func (c *ipamCall) cmd() (*cniexec.Cmd, error) {
	p, err := c.path()
	if err != nil {
		return nil, err
	}
	return &cniexec.Cmd{Path: p, Env: c.env(), Stdin: c.inv.args.StdinData, Stderr: os.Stderr}, nil
}

// add runs IPAM ADD and returns its result.
func (c *ipamCall) add(ctx context.Context) (*types100.Result, error) {
	cmd, err := c.cmd()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, ipamTimeout)
	defer cancel()
	r, err := cmd.RunForResult(ctx)
	if err != nil {
		return nil, err
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("IPAM plugin %q returned an unusable result: %v", c.inv.conf.IPAM.Type, err), "")
	}
	if len(res.IPs) == 0 {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("IPAM plugin %q returned no addresses", c.inv.conf.IPAM.Type), "")
	}
	return res, nil
}

// run runs a verb without a result (DEL, CHECK, GC, STATUS).
func (c *ipamCall) run(ctx context.Context) error {
	cmd, err := c.cmd()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ipamTimeout)
	defer cancel()
	_, err = cmd.Run(ctx)
	return err
}

// ipam returns a call of verb for the invocation's own attachment, or nil
// when the network has no IPAM.
func (inv *invocation) ipam(verb string) *ipamCall {
	if inv.conf.IPAM.Type == "" {
		return nil
	}
	return &ipamCall{inv: inv, command: verb}
}

// releaseIPAM releases the attachment's address, if the network has IPAM.
func releaseIPAM(ctx context.Context, inv *invocation) error {
	c := inv.ipam("DEL")
	if c == nil {
		return nil
	}
	if err := c.run(ctx); err != nil {
		return fmt.Errorf("releasing IPAM (%s): %w", inv.conf.IPAM.Type, err)
	}
	return nil
}
