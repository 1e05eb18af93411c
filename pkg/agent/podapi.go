package agent

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/userspace-cni/userspace/pkg/kube"
	"github.com/userspace-cni/userspace/pkg/podapi"
	"github.com/userspace-cni/userspace/pkg/policy"
	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// Bounds of the pod API: how many plugin sessions are served at once (more
// are closed at once, and those plugins run their helper), and how long a
// session may stay silent.
const (
	maxPodAPISessions = 64
	podAPIIdle        = time.Minute
)

// PodAPI answers the plugin's pod requests (package podapi) on a unix
// socket in the plugin's state directory, with clients kept across plugin
// calls: a plugin call then pays neither client-go's start-up (in its
// helper) nor a TLS handshake. Each request names the plugin's own
// kubeconfig, so the API sees the plugin's identity, not the agent's.
type PodAPI struct {
	pol     *policy.Policy
	log     *slog.Logger
	clients kube.Clients
	slots   chan struct{}
	// sessions counts sessions by result ("served", "refused"), and the
	// requests answered "unserved".
	sessions func(result string)
}

// PodAPI returns the pod API for the node policy pol, counted in the
// agent's metrics.
func (a *Agent) PodAPI(pol *policy.Policy) *PodAPI {
	return &PodAPI{pol: pol, log: a.log, slots: make(chan struct{}, maxPodAPISessions),
		sessions: func(result string) { a.m.podAPI.WithLabelValues(result).Inc() }}
}

// Client gives the kept client for a kubeconfig the node policy allows and
// this process sees; for any other the answer is podapi.ErrUnserved (the
// plugin then uses its helper, which sees the node's files).
func (p *PodAPI) Client(kubeconfig string, timeout time.Duration) (*kube.Client, error) {
	if _, _, err := p.pol.Match(policy.Kubeconfig, kubeconfig); err != nil {
		p.sessions("unserved")
		return nil, fmt.Errorf("%w: %s: %v", podapi.ErrUnserved, kubeconfig, err)
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		p.sessions("unserved")
		return nil, fmt.Errorf("%w: %v", podapi.ErrUnserved, err)
	}
	return p.clients.Client(kubeconfig, timeout)
}

// Listen makes the socket at path, replacing a dead one a previous agent
// left, and refusing to replace anything else.
func Listen(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket: not removed", path)
		}
		removed, err := sockdir.RemoveDead(path)
		if err != nil {
			return nil, err
		}
		if !removed {
			if _, err := os.Lstat(path); err == nil {
				return nil, fmt.Errorf("%s: another agent is serving there", path)
			}
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln, nil
}

// Serve accepts sessions on ln until ctx ends, then closes ln (removing
// the socket) and waits for the sessions.
func (p *PodAPI) Serve(ctx context.Context, ln *net.UnixListener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("pod API: %w", err)
		}
		select {
		case p.slots <- struct{}{}:
		default:
			p.log.Warn("pod API: too many sessions; the plugin runs its helper", "max", maxPodAPISessions)
			p.sessions("refused")
			_ = c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-p.slots }()
			p.session(ctx, c)
		}()
	}
}

func (p *PodAPI) session(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	if uid, err := peerUID(c); err != nil || uid != 0 {
		p.log.Warn("pod API: refused a connection not from root", "uid", uid, "error", err)
		p.sessions("refused")
		return
	}
	p.sessions("served")
	if err := kube.Serve(idleReader{c}, c, p); err != nil && ctx.Err() == nil {
		p.log.Debug("pod API session ended", "error", err)
	}
}

// peerUID is the connected process's user (the socket is root's alone;
// this holds even if its mode were loosened).
func peerUID(c *net.UnixConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

// idleReader ends a session that sends nothing for podAPIIdle.
type idleReader struct{ c *net.UnixConn }

func (r idleReader) Read(p []byte) (int, error) {
	if err := r.c.SetReadDeadline(time.Now().Add(podAPIIdle)); err != nil {
		return 0, err
	}
	return r.c.Read(p)
}
