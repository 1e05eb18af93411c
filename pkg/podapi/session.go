package podapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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

// dialTimeout bounds connecting to the agent's socket: a local socket
// answers at once or not at all.
const dialTimeout = 250 * time.Millisecond

// agentGrace is how much longer than one API request the agent may take
// to answer a session's first request before the plugin gives up on it and
// asks its helper: a hung agent must not hold every ADD on the node for the
// verb's whole time.
const agentGrace = time.Second

// answerMargin is the part of an operation's time the server does not get:
// it answers (with its own timeout error) before the session gives up on
// it.
const answerMargin = 200 * time.Millisecond

// Session is one plugin verb's conversation with the node agent or the
// helper. It is not safe for concurrent use.
type Session struct {
	agent      string
	helper     string
	kubeconfig string
	timeout    time.Duration
	stderr     io.Writer
	c          *conn
	// answered says c has answered a request: from then on the session
	// holds state there (the pod) and cannot move to the helper.
	answered bool
	requests int64
	// broken is set once the server failed to answer; the session then
	// refuses further requests.
	broken error
}

// Open starts a session for the kubeconfig at kubeconfig (already checked
// against the node policy): with the node agent listening on agentSocket
// if it accepts a connection, else with the helper at helper, whose stderr
// (its log) goes to stderr. timeout bounds each HTTP request to the API.
func Open(agentSocket, helper, kubeconfig string, timeout time.Duration, stderr io.Writer) (*Session, error) {
	s := &Session{agent: agentSocket, helper: helper, kubeconfig: kubeconfig, timeout: timeout, stderr: stderr}
	if err := s.connect(); err != nil {
		return nil, err
	}
	return s, nil
}

// connect opens the session's transport: the agent if it accepts, else the
// helper.
func (s *Session) connect() error {
	s.answered, s.broken = false, nil
	if s.agent != "" {
		if c, err := dialAgent(s.agent); err == nil {
			s.c = c
			return nil
		}
	}
	c, err := startHelper(s.helper, s.stderr)
	if err != nil {
		return err
	}
	s.c = c
	return nil
}

// Via names the server the session talks to.
func (s *Session) Via() string { return s.c.name }

// call sends req and returns the answer, at most until ctx ends (or
// DefaultTimeout without a deadline). The agent's first answer may be that
// it does not serve the kubeconfig, or it may fail to answer: the request
// then goes to the helper.
func (s *Session) call(ctx context.Context, req *Request) (*Response, error) {
	if s.broken != nil {
		return nil, s.broken
	}
	req.Kubeconfig, req.RequestTimeoutMS = s.kubeconfig, s.timeout.Milliseconds()
	var resp *Response
	var err error
	if s.c.agent && !s.answered {
		actx, cancel := context.WithTimeout(ctx, s.timeout+agentGrace)
		resp, err = s.c.roundTrip(actx, req)
		cancel()
	} else {
		resp, err = s.c.roundTrip(ctx, req)
	}
	if s.c.agent && !s.answered && (err != nil || resp.Error != nil && resp.Error.Kind == kindName(ErrUnserved)) {
		s.c.close()
		c, herr := startHelper(s.helper, s.stderr)
		if herr != nil {
			// s.c stays the closed agent connection: closing it again is harmless.
			s.broken = &kindError{kind: ErrUnreachable, err: herr}
			return nil, s.broken
		}
		s.c = c
		resp, err = s.c.roundTrip(ctx, req)
	}
	if err != nil {
		s.c.stop()
		s.broken = &kindError{kind: ErrUnreachable, err: fmt.Errorf("%s, request %q for pod %s/%s: %w", s.c.name, req.Op, req.Namespace, req.Name, err)}
		return nil, s.broken
	}
	s.answered = true
	s.requests = resp.Requests
	if resp.Error != nil {
		return nil, resp.Error.decode()
	}
	return resp, nil
}

// Pod reads namespace/name and its shared directory: the volume named volume
// (the node policy's), under kubeletRoot for an emptyDir. A non-empty uid
// that differs from the pod's is an ErrUIDMismatch error.
func (s *Session) Pod(ctx context.Context, namespace, name, uid, volume, kubeletRoot string) (*Pod, error) {
	req := &Request{Op: OpPod, Namespace: namespace, Name: name, UID: uid, Volume: volume, KubeletRoot: kubeletRoot}
	resp, err := s.call(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.Pod == nil {
		return nil, &kindError{kind: ErrAPI, err: fmt.Errorf("%s answered no pod for %s/%s", s.c.name, namespace, name)}
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
// It needs nothing from earlier requests, so on a broken session (a publish
// whose answer was lost, being rolled back) it starts over with a new
// transport.
func (s *Session) Unpublish(ctx context.Context, namespace, name, containerID, ifName string) error {
	if s.broken != nil {
		s.c.close()
		if err := s.connect(); err != nil {
			return &kindError{kind: ErrUnreachable, err: err}
		}
	}
	_, err := s.call(ctx, &Request{Op: OpUnpublish, Namespace: namespace, Name: name, ContainerID: containerID, IfName: ifName})
	return err
}

// Requests is the number of HTTP requests the server reported having sent
// (the agent's count is its client's, across sessions).
func (s *Session) Requests() int64 { return s.requests }

// Close ends the session: the helper exits (killed after closeGrace), the
// agent's connection closes. It returns once the helper is reaped.
func (s *Session) Close() { s.c.close() }

// conn is one transport to a server.
type conn struct {
	name    string
	agent   bool
	w       io.WriteCloser
	answers chan answer
	done    chan struct{} // closed when the reader has ended
	stop    func()        // ends the server's side at once
}

type answer struct {
	line []byte
	err  error
}

func dialAgent(path string) (*conn, error) {
	nc, err := net.DialTimeout("unix", path, dialTimeout)
	if err != nil {
		return nil, err
	}
	c := &conn{name: "node agent " + path, agent: true, w: nc, answers: make(chan answer, 1), done: make(chan struct{})}
	c.stop = func() { _ = nc.Close() }
	go c.read(nc, func() error { return nil })
	return c, nil
}

func startHelper(path string, stderr io.Writer) (*conn, error) {
	cmd := exec.Command(path)
	cmd.Stderr = stderr
	// The helper must not outlive the plugin, whatever kills it; its own
	// process group lets stop reach anything it started.
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
	c := &conn{name: "Kubernetes helper " + path, w: stdin, answers: make(chan answer, 1), done: make(chan struct{})}
	c.stop = func() {
		// Not once reaped: the number may then be another's.
		select {
		case <-c.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	go c.read(stdout, cmd.Wait)
	return c, nil
}

// read passes the server's answers on, one line each, until its output
// ends; then it calls wait (reaping the helper).
func (c *conn) read(r io.Reader, wait func() error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		c.answers <- answer{line: append([]byte(nil), sc.Bytes()...)}
	}
	err := sc.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	if werr := wait(); werr != nil {
		err = fmt.Errorf("%w (%v)", err, werr)
	}
	close(c.done)
	c.answers <- answer{err: err}
}

// roundTrip sends req and waits for its answer. An error is the transport's:
// no answer in time, the server gone, an unreadable answer.
func (c *conn) roundTrip(ctx context.Context, req *Request) (*Response, error) {
	budget := DefaultTimeout
	if dl, ok := ctx.Deadline(); ok {
		budget = time.Until(dl)
	}
	req.TimeoutMS = max(budget-answerMargin, budget/2).Milliseconds()
	line, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding the request: %w", err)
	}
	if _, err := c.w.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("writing to it: %w", err)
	}
	timer := time.NewTimer(budget)
	defer timer.Stop()
	var a answer
	select {
	case a = <-c.answers:
	case <-timer.C:
		return nil, fmt.Errorf("no answer within %v", budget.Round(time.Millisecond))
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer: %w", ctx.Err())
	}
	if a.err != nil {
		return nil, fmt.Errorf("it ended: %w", a.err)
	}
	resp := &Response{}
	if err := json.Unmarshal(a.line, resp); err != nil {
		return nil, fmt.Errorf("unreadable answer %.200q: %w", a.line, err)
	}
	return resp, nil
}

// close ends the conversation and waits for the reader: the helper gets
// closeGrace to exit on its own.
func (c *conn) close() {
	if c.w != nil {
		_ = c.w.Close()
	}
	if c.agent {
		c.stop()
	}
	select {
	case <-c.done:
	case <-time.After(closeGrace):
		c.stop()
		<-c.done
	}
}
