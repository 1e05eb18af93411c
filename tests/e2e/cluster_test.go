package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// cluster is a single-node Kubernetes cluster whose every file is under
// base: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// containerd with runc, and the kubelet, with the real Multus thin plugin in
// front of a bridge + host-local cluster network. Its processes are stopped
// by PID.
type cluster struct {
	base, assets, images string
	node                 string
	pki                  *pki
	apiURL               string
	admin                string // admin kubeconfig (system:masters)
	containerdSock       string
	cniBin, cniConf      string
	policyFile           string
	vppSock              string
	agentPort            int // the node agent's /healthz, /readyz, /metrics
	bridge               string
	cgroupRoot           string
	madeRunContainerd    bool
	madeShimDir          bool
	procs                []*process
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *cluster) path(p ...string) string { return filepath.Join(append([]string{c.base}, p...)...) }

func (c *cluster) bin(name string) string { return filepath.Join(c.assets, "bin", name) }

// start runs a component with its output in <base>/logs/<name>.log.
func (c *cluster) start(name string, env []string, bin string, args ...string) (*process, error) {
	logPath := c.path("logs", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Its own process group, so a Ctrl-C of go test reaches the test's
	// cleanup first and not the component directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	c.procs = append(c.procs, p)
	return p, nil
}

// stop ends p by its PID: SIGTERM, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// waitFor polls ok until it returns nil, the timeout passes or a process
// the cluster started has exited (with its log in the error).
func (c *cluster) waitFor(what string, timeout time.Duration, ok func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ok()
		if err == nil {
			return nil
		}
		for _, p := range c.procs {
			if p.exited() {
				return fmt.Errorf("waiting for %s: %s exited:\n%s", what, p.name, p.tail())
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kubectl runs kubectl as the cluster admin; stdin may be nil.
func (c *cluster) kubectl(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin("kubectl"), append([]string{"--kubeconfig", c.admin}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s%s", strings.Join(args, " "), err, stderr.String(), out.String())
	}
	return out.String(), nil
}

// getJSON runs kubectl get -o json into v.
func (c *cluster) getJSON(v any, args ...string) error {
	out, err := c.kubectl(nil, append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), v)
}

// startCluster brings the node up; on error the caller still calls stop.
func (c *cluster) startCluster() error {
	for _, d := range []string{"logs", "etcd", "containerd/root", "containerd/state", "kubelet", "pod-logs",
		"opt/cni/bin", "etc/cni/net.d", "etc/cni/userspace", "etc/cni/net.d/userspace.d", "var/lib/cni", "volume-plugins"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return err
		}
	}
	c.cniBin, c.cniConf = c.path("opt/cni/bin"), c.path("etc/cni/net.d")
	c.policyFile = c.path("etc/cni/userspace/policy.json")
	var err error
	if c.pki, err = newPKI(c.path("pki")); err != nil {
		return err
	}
	ports := map[string]int{}
	for _, n := range []string{"etcd", "etcd-peer", "apiserver", "kcm", "sched", "kubelet", "agent"} {
		if ports[n], err = freePort(); err != nil {
			return err
		}
	}
	c.apiURL = fmt.Sprintf("https://127.0.0.1:%d", ports["apiserver"])
	c.agentPort = ports["agent"]
	if err := c.pki.issue("apiserver", "kube-apiserver", nil, "127.0.0.1", "10.96.0.1", "localhost",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc"); err != nil {
		return err
	}
	if err := c.pki.issue("admin", "e2e-admin", []string{"system:masters"}); err != nil {
		return err
	}
	if err := c.pki.issue("kubelet", "system:node:"+c.node, []string{"system:nodes"}, "127.0.0.1", c.node); err != nil {
		return err
	}
	if c.admin, err = c.pki.kubeconfig("admin", c.apiURL); err != nil {
		return err
	}
	kubeletKC, err := c.pki.kubeconfig("kubelet", c.apiURL)
	if err != nil {
		return err
	}

	// etcd (Debian's), on loopback only.
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports["etcd"])
	if _, err := c.start("etcd", nil, c.bin("etcd"), "--data-dir", c.path("etcd"), "--name", "e2e",
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports["etcd-peer"]),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports["etcd-peer"]),
		"--initial-cluster", fmt.Sprintf("e2e=http://127.0.0.1:%d", ports["etcd-peer"])); err != nil {
		return err
	}
	if err := c.waitFor("etcd", 60*time.Second, func() error {
		r, err := http.Get(etcdURL + "/health")
		if err != nil {
			return err
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			return fmt.Errorf("health: %s", r.Status)
		}
		return nil
	}); err != nil {
		return err
	}

	p := c.pki.path
	if _, err := c.start("kube-apiserver", nil, c.bin("kube-apiserver"),
		"--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(ports["apiserver"]), "--endpoint-reconciler-type", "none",
		"--service-cluster-ip-range", "10.96.0.0/24",
		"--tls-cert-file", p("apiserver.crt"), "--tls-private-key-file", p("apiserver.key"),
		"--client-ca-file", p("ca.crt"), "--authorization-mode", "Node,RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", p("sa.pub"),
		"--service-account-signing-key-file", p("sa.key"),
		// The API server's client certificate towards the kubelet (exec, logs).
		"--kubelet-client-certificate", p("admin.crt"), "--kubelet-client-key", p("admin.key"),
		// The node is "localhost" and its kubelet listens on loopback only:
		// the kubelet refuses a loopback node IP, so the API server reaches
		// it by host name.
		"--kubelet-preferred-address-types", "Hostname",
		// The notes' VPP pods are privileged (VPP maps the memif regions).
		"--allow-privileged=true",
		"--profiling=false"); err != nil {
		return err
	}
	if err := c.waitFor("kube-apiserver", 120*time.Second, func() error {
		_, err := c.kubectl(nil, "get", "--raw", "/readyz")
		return err
	}); err != nil {
		return err
	}
	if _, err := c.start("kube-controller-manager", nil, c.bin("kube-controller-manager"),
		"--kubeconfig", c.admin, "--authentication-kubeconfig", c.admin, "--authorization-kubeconfig", c.admin,
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(ports["kcm"]),
		"--leader-elect=false", "--root-ca-file", p("ca.crt"),
		"--service-account-private-key-file", p("sa.key"), "--use-service-account-credentials=false"); err != nil {
		return err
	}
	if _, err := c.start("kube-scheduler", nil, c.bin("kube-scheduler"),
		"--kubeconfig", c.admin, "--authentication-kubeconfig", c.admin, "--authorization-kubeconfig", c.admin,
		"--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(ports["sched"]), "--leader-elect=false"); err != nil {
		return err
	}

	// The cluster network: Multus (thin plugin) with a bridge + host-local
	// delegate, everything in the private CNI directories.
	for _, b := range []string{"bridge", "host-local", "loopback", "portmap", "multus"} {
		if err := copyFile(c.bin("cni/"+b), filepath.Join(c.cniBin, b), 0o755); err != nil {
			return err
		}
	}
	multusKC, err := c.pki.kubeconfig("admin", c.apiURL)
	if err != nil {
		return err
	}
	multus := map[string]any{
		"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus",
		"kubeconfig": multusKC, "cniDir": c.path("var/lib/cni/multus"), "binDir": c.cniBin,
		"logFile": c.path("logs/multus.log"), "logLevel": "verbose",
		"delegates": []any{map[string]any{
			"cniVersion": "1.0.0", "name": "e2e-cluster",
			"plugins": []any{map[string]any{
				"type": "bridge", "bridge": c.bridge, "isGateway": true, "ipMasq": false,
				"ipam": map[string]any{"type": "host-local", "subnet": "10.244.0.0/24",
					"dataDir": c.path("var/lib/cni/networks")},
			}},
		}},
	}
	data, _ := json.MarshalIndent(multus, "", "  ")
	if err := os.WriteFile(filepath.Join(c.cniConf, "00-multus.conf"), data, 0o644); err != nil {
		return err
	}

	// containerd. Its shims put their sockets in /run/containerd/s whatever
	// the state directory: remove /run/containerd after if it was not there.
	if _, err := os.Stat("/run/containerd"); errors.Is(err, os.ErrNotExist) {
		c.madeRunContainerd = true
	}
	if _, err := os.Stat("/run/containerd/s"); errors.Is(err, os.ErrNotExist) {
		c.madeShimDir = true
	}
	c.containerdSock = c.path("containerd/containerd.sock")
	conf := fmt.Sprintf(`version = 3
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%q]
    conf_dir = %q
    max_conf_num = 1
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %q
        Root = %q
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "registry.k8s.io/pause:3.10.1"
[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, c.path("containerd/root"), c.path("containerd/state"), c.containerdSock, c.containerdSock+".ttrpc",
		c.cniBin, c.cniConf, c.bin("runc"), c.path("containerd/runc"))
	if err := os.WriteFile(c.path("containerd/config.toml"), []byte(conf), 0o644); err != nil {
		return err
	}
	// The plugin reads its node policy from the file the DaemonSet's
	// installer writes under base, named by the runtime's environment,
	// which containerd and Multus pass on to every CNI plugin.
	env := []string{"USERSPACE_CNI_POLICY=" + c.policyFile, "PATH=" + filepath.Dir(c.bin("runc")) + ":" + os.Getenv("PATH")}
	if _, err := c.start("containerd", env, c.bin("containerd"), "--config", c.path("containerd/config.toml")); err != nil {
		return err
	}
	if err := c.waitFor("containerd", 60*time.Second, func() error {
		_, err := c.ctr("version")
		return err
	}); err != nil {
		return err
	}
	tars, err := filepath.Glob(filepath.Join(c.images, "*.tar"))
	if err != nil {
		return err
	}
	for _, t := range tars {
		base := filepath.Base(t)
		if strings.HasPrefix(base, "debian-") || strings.HasPrefix(base, "golang-") {
			continue // build-time bases only
		}
		if out, err := c.ctr("-n", "k8s.io", "images", "import", t); err != nil {
			return fmt.Errorf("importing %s: %v\n%s", base, err, out)
		}
	}

	// The kubelet: cgroup v1 allowed, no CAP_SYS_RESOURCE here (containerd's
	// restrict_oom_score_adj), its own cgroup subtree, everything else under
	// base.
	c.cgroupRoot = "/" + filepath.Base(c.base)
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hs {
		if fi, err := os.Stat(filepath.Join(h, "cgroup.procs")); err == nil && !fi.IsDir() {
			if err := os.Mkdir(filepath.Join(h, c.cgroupRoot), 0o755); err != nil {
				return fmt.Errorf("cgroup root: %w", err)
			}
		}
	}
	kcfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %q
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzPort: 0
containerRuntimeEndpoint: unix://%s
podLogsDir: %q
volumePluginDir: %q
tlsCertFile: %q
tlsPrivateKeyFile: %q
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %q}
authorization: {mode: AlwaysAllow}
failSwapOn: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "0%%", nodefs.available: "0%%", imagefs.available: "0%%"}
serializeImagePulls: false
staticPodPath: ""
`, c.cgroupRoot, ports["kubelet"], c.containerdSock, c.path("pod-logs"), c.path("volume-plugins"),
		p("kubelet.crt"), p("kubelet.key"), p("ca.crt"))
	if err := os.WriteFile(c.path("kubelet/config.yaml"), []byte(kcfg), 0o644); err != nil {
		return err
	}
	if _, err := c.start("kubelet", nil, c.bin("kubelet"), "--config", c.path("kubelet/config.yaml"),
		"--kubeconfig", kubeletKC, "--root-dir", c.path("kubelet"), "--hostname-override", c.node,
		"--cert-dir", c.path("kubelet/pki")); err != nil {
		return err
	}
	return c.waitFor("node Ready", 180*time.Second, func() error {
		var node struct {
			Status struct {
				Conditions []struct{ Type, Status, Message string }
			}
		}
		if err := c.getJSON(&node, "node", c.node); err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == "Ready" {
				if cond.Status == "True" {
					return nil
				}
				return errors.New(cond.Message)
			}
		}
		return errors.New("no Ready condition")
	})
}

func (c *cluster) ctr(args ...string) (string, error) {
	out, err := exec.Command(c.bin("ctr"), append([]string{"--address", c.containerdSock}, args...)...).CombinedOutput()
	return string(out), err
}

// stop tears the node down: pods first (their CNI DELs need the plugin and
// the switch), then the components in reverse order, then whatever runc and
// the kernel still hold.
func (c *cluster) stop() []error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		grace := 10 * time.Second
		p.stop(grace)
	}
	// Shims: processes whose command line names this containerd's socket
	// (they outlive containerd by design).
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(c.containerdSock)) {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// Containers left behind: runc's private root names them.
	runcRoot := c.path("containerd/runc/k8s.io")
	if ents, err := os.ReadDir(runcRoot); err == nil {
		for _, e := range ents {
			_ = exec.Command(c.bin("runc"), "--root", runcRoot, "delete", "--force", e.Name()).Run()
		}
	}
	// Mounts under base (overlay snapshots, pod volumes, netns), deepest
	// first.
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var mine []string
		for _, l := range strings.Split(string(mounts), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && (strings.HasPrefix(f[4], c.base+"/") || strings.HasPrefix(f[4], "/run/containerd/")) {
				mine = append(mine, f[4])
			}
		}
		for i := len(mine) - 1; i >= 0; i-- {
			if err := syscall.Unmount(mine[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mine[i], err))
			}
		}
	}
	if c.bridge != "" {
		_ = exec.Command("ip", "link", "del", c.bridge).Run()
	}
	if c.cgroupRoot != "" {
		removeCgroups(c.cgroupRoot)
	}
	if c.madeRunContainerd {
		_ = os.RemoveAll("/run/containerd")
	} else if c.madeShimDir {
		_ = os.Remove("/run/containerd/s") // only if empty: another containerd may use it now
	}
	return errs
}

// removeCgroups removes the kubelet's cgroup subtree in every v1
// hierarchy, deepest first.
func removeCgroups(root string) {
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hs {
		top := filepath.Join(h, root)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}
