package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/userspace-cni/userspace/pkg/plugin"
	"github.com/userspace-cni/userspace/pkg/podapi"
	"github.com/userspace-cni/userspace/pkg/policy"
)

// dialEnv makes the test binary a pod API client instead of running tests:
// TestPodAPIPeerMustBeRoot runs it as another user.
const dialEnv = "USERSPACE_TEST_PODAPI_DIAL"

func TestMain(m *testing.M) {
	if sock := os.Getenv(dialEnv); sock != "" {
		fmt.Print(askPodAPI(sock))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// askPodAPI sends one pod request and returns the answer line, or how the
// session ended without one.
func askPodAPI(sock string) string {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, `{"op":"pod","namespace":"ns","name":"p","kubeconfig":"/elsewhere/kubeconfig","requestTimeoutMs":1000,"timeoutMs":1000}`); err != nil {
		return "write: " + err.Error()
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "no answer: " + err.Error()
	}
	return strings.TrimSpace(line)
}

// Only root's processes are served, even with the socket's mode loosened:
// another user's connection is closed unanswered and counted as refused,
// while root gets an answer (here: the kubeconfig is not served).
func TestPodAPIPeerMustBeRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs a client as another user: run it as root")
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Let the other user reach the socket and the test binary.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sock := podapi.AgentSocketIn(dir)
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	pol := policy.Default()
	pol.KubeconfigDirs = []string{filepath.Join(dir, "kube")}
	a := New(Config{Plugin: plugin.New()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.PodAPI(pol).Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	if got := askPodAPI(sock); !strings.Contains(got, `"kind":"unserved"`) {
		t.Errorf("root's request: %s, want the unserved answer", got)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), dialEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as nobody: %v", err)
	}
	// Closed unanswered: before the request was written (a broken pipe) or
	// with it unread (EOF, a reset).
	if got := string(out); !strings.HasPrefix(got, "no answer: ") && !strings.HasPrefix(got, "write: ") {
		t.Errorf("nobody's request: %q, want the session closed unanswered", got)
	}
	refused := a.m.podAPI.WithLabelValues("refused")
	if n := testutil.ToFloat64(refused); n != 1 {
		t.Errorf("refused sessions %v, want 1", n)
	}
}
