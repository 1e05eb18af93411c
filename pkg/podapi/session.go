package podapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/userspace-cni/userspace/pkg/configdata"
)

// DefaultTimeout bounds an operation whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// closeGrace is how long Close waits for the helper to exit on its own
// once its stdin is closed.
const closeGrace = time.Second

// answerMargin is the part of an operation's time the helper does not get:
// it answers (with its own timeout error) before the session gives up on
// it and kills it.
const answerMargin = 200 * time.Millisecond

// Session is one helper process serving one plugin verb. It is not safe for
// concurrent use.
type Session struct {
	helper   string
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	answers  chan answer
	done     chan struct{} // closed when the process has been waited for
	requests int64
	// broken is set once the helper failed to answer; the session then
	// refuses further requests.
	broken error
}

type answer struct {
	line []byte
	err  error
}

// Start runs the helper at path for the kubeconfig at kubeconfig (already
// checked against the node policy). timeout bounds each HTTP request the
// helper makes. The helper's stderr (its log) goes to stderr.
func Start(path, kubeconfig string, timeout time.Duration, stderr io.Writer) (*Session, error) {
	cmd := exec.Command(path, "-kubeconfig", kubeconfig, "-timeout", timeout.String())
	cmd.Stderr = stderr
	// The helper must not outlive the plugin, whatever kills it; its own
	// process group lets kill reach anything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes helper %s: %w", path, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes helper %s: %w", path, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the Kubernetes helper %s (installed next to the plugin): %w", path, err)
	}
	s := &Session{helper: path, cmd: cmd, stdin: stdin, answers: make(chan answer, 1), done: make(chan struct{})}
	go s.read(stdout)
	return s, nil
}

// read passes the helper's answers on, one line each, until its stdout
// ends; then it reaps the process.
func (s *Session) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		s.answers <- answer{line: append([]byte(nil), sc.Bytes()...)}
	}
	err := sc.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	if werr := s.cmd.Wait(); werr != nil {
		err = fmt.Errorf("%w (%v)", err, werr)
	}
	close(s.done)
	s.answers <- answer{err: err}
}

// call sends req and waits for its answer, at most until ctx ends (or
// DefaultTimeout without a deadline); a helper that has not answered by then
// is killed.
func (s *Session) call(ctx context.Context, req *Request) (*Response, error) {
	if s.broken != nil {
		return nil, s.broken
	}
	budget := DefaultTimeout
	if dl, ok := ctx.Deadline(); ok {
		budget = time.Until(dl)
	}
	req.TimeoutMS = max(budget-answerMargin, budget/2).Milliseconds()
	line, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding the %s request: %w", req.Op, err)
	}
	if _, err := s.stdin.Write(append(line, '\n')); err != nil {
		return nil, s.fail(req, fmt.Errorf("writing to it: %w", err))
	}
	timer := time.NewTimer(budget)
	defer timer.Stop()
	var a answer
	select {
	case a = <-s.answers:
	case <-timer.C:
		return nil, s.fail(req, fmt.Errorf("no answer within %v", budget.Round(time.Millisecond)))
	case <-ctx.Done():
		return nil, s.fail(req, fmt.Errorf("no answer: %w", ctx.Err()))
	}
	if a.err != nil {
		return nil, s.fail(req, fmt.Errorf("it ended: %w", a.err))
	}
	resp := &Response{}
	if err := json.Unmarshal(a.line, resp); err != nil {
		return nil, s.fail(req, fmt.Errorf("unreadable answer %.200q: %w", a.line, err))
	}
	s.requests = resp.Requests
	if resp.Error != nil {
		return nil, resp.Error.decode()
	}
	return resp, nil
}

// fail kills the helper and marks the session broken: its answers can no
// longer be matched to requests. The error is of kind ErrUnreachable (the runtime
// retries).
func (s *Session) fail(req *Request, err error) error {
	s.kill()
	s.broken = &kindError{kind: ErrUnreachable, err: fmt.Errorf("the Kubernetes helper %s, %s pod %s/%s: %w", s.helper, req.Op, req.Namespace, req.Name, err)}
	return s.broken
}

// kill ends the helper's process group, unless the helper has been reaped
// (its number may then be another's).
func (s *Session) kill() {
	select {
	case <-s.done:
	default:
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// Pod reads namespace/name and its shared directory: the volume named volume
// (the node policy's), under kubeletRoot for an emptyDir. A non-empty uid
// that differs from the pod's is an ErrUIDMismatch error.
func (s *Session) Pod(ctx context.Context, namespace, name, uid, volume, kubeletRoot string) (*Pod, error) {
	resp, err := s.call(ctx, &Request{Op: OpPod, Namespace: namespace, Name: name, UID: uid, Volume: volume, KubeletRoot: kubeletRoot})
	if err != nil {
		return nil, err
	}
	if resp.Pod == nil {
		return nil, s.fail(&Request{Op: OpPod, Namespace: namespace, Name: name}, errors.New("the answer has no pod"))
	}
	return resp.Pod, nil
}

// Publish adds entry to the configuration data of the pod Pod read, and
// sets its mapped-dir annotation to mappedDir unless that is empty.
func (s *Session) Publish(ctx context.Context, entry *configdata.ConfigData, mappedDir string) error {
	_, err := s.call(ctx, &Request{Op: OpPublish, ConfigData: entry, MappedDir: mappedDir})
	return err
}

// Unpublish removes the entry of containerID's ifName from namespace/name.
func (s *Session) Unpublish(ctx context.Context, namespace, name, containerID, ifName string) error {
	_, err := s.call(ctx, &Request{Op: OpUnpublish, Namespace: namespace, Name: name, ContainerID: containerID, IfName: ifName})
	return err
}

// Requests is the number of HTTP requests the helper reported having sent.
func (s *Session) Requests() int64 { return s.requests }

// Close ends the helper: its stdin closes, and if it has not exited within
// closeGrace it is killed. It returns once the process is reaped.
func (s *Session) Close() {
	_ = s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(closeGrace):
		s.kill()
		<-s.done
	}
}
