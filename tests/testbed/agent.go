package testbed

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/userspace-cni/userspace/pkg/policy"
)

// Agent is the node agent binary running as its own process, so that it
// can be killed as a crash would.
type Agent struct {
	cmd  *exec.Cmd
	Addr string // its /healthz, /readyz and /metrics
	done chan struct{}
}

// StartAgent starts the agent binary bin on the node policy at policyPath,
// without the Kubernetes API, with args added, and returns once /readyz
// answers 200 (it has been over every attachment once, and its pod API
// socket is listening).
func StartAgent(bin, policyPath string, args ...string) (*Agent, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, append([]string{"-listen", addr, "-kubeconfig", "none"}, args...)...)
	cmd.Env = append(os.Environ(), policy.PathEnv+"="+policyPath)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &Agent{cmd: cmd, Addr: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(a.done) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			a.Kill()
			return nil, fmt.Errorf("the agent %s was not ready within 30 s", bin)
		}
	}
}

// Kill ends the agent with SIGKILL, as a crash would, and waits for it; a
// second call does nothing.
func (a *Agent) Kill() {
	_ = a.cmd.Process.Kill()
	<-a.done
}

// Metric is the value of series on the agent's /metrics (-1 if it does not
// answer, 0 if the series is absent).
func (a *Agent) Metric(series string) float64 {
	resp, err := http.Get("http://" + a.Addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return SeriesValue(string(body), series)
}
