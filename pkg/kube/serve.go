package kube

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/userspace-cni/userspace/pkg/podapi"
)

// maxRequestLine bounds one request line from the plugin.
const maxRequestLine = 1 << 20

// ClientSource gives the client for a request's kubeconfig and bound of
// each HTTP request. An error that matches podapi.ErrUnserved is answered
// as such (the plugin then asks its helper); any other is a configuration
// error.
type ClientSource interface {
	Client(kubeconfig string, timeout time.Duration) (*Client, error)
}

// Serve answers one session's podapi requests read from r, one JSON line
// each, on w, until r ends: the helper's loop on its stdin and stdout
// (cmd/userspace-kube) and the node agent's on each connection.
func Serve(r io.Reader, w io.Writer, clients ClientSource) error {
	s := &server{clients: clients}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxRequestLine)
	enc := json.NewEncoder(w)
	for sc.Scan() {
		if err := enc.Encode(s.handle(sc.Bytes())); err != nil {
			return fmt.Errorf("answering the plugin: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the plugin's requests: %w", err)
	}
	return nil
}

// server is one session's state: the pod OpPod read, and the client of
// the last request.
type server struct {
	clients ClientSource
	client  *Client
	pod     *corev1.Pod
	// requests counts this session's HTTP requests: the client's count
	// moved by each operation (a kept client serves other sessions too).
	requests int64
	before   int64
}

func (s *server) handle(line []byte) *podapi.Response {
	req := &podapi.Request{}
	if err := json.Unmarshal(line, req); err != nil {
		return s.fail(fmt.Errorf("unreadable request: %w", err), podapi.ErrAPI)
	}
	c, err := s.clients.Client(req.Kubeconfig, time.Duration(req.RequestTimeoutMS)*time.Millisecond)
	if err != nil {
		return s.fail(fmt.Errorf("kubeconfig: %w", err), podapi.ErrConfig)
	}
	s.client, s.before = c, c.Requests()
	opTimeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if opTimeout <= 0 {
		opTimeout = podapi.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	switch req.Op {
	case podapi.OpPod:
		pod, err := s.client.Pod(ctx, req.Namespace, req.Name, req.UID)
		if err != nil {
			return s.fail(err, podapi.ErrAPI)
		}
		host, mount, ok, err := SharedDir(pod, req.Volume, req.KubeletRoot)
		if err != nil {
			return s.fail(err, podapi.ErrConfig)
		}
		s.pod = pod
		p := &podapi.Pod{UID: string(pod.UID)}
		if ok {
			p.Dir, p.MappedDir, p.EmptyDir = host, mount, IsEmptyDir(pod, req.Volume)
		}
		return s.answer(&podapi.Response{Pod: p})
	case podapi.OpPublish:
		if s.pod == nil {
			return s.fail(errors.New("publish before pod: no pod read in this session"), podapi.ErrAPI)
		}
		if err := s.client.AddConfigData(ctx, s.pod, req.ConfigData, req.MappedDir); err != nil {
			return s.fail(err, podapi.ErrAPI)
		}
		return s.answer(&podapi.Response{})
	case podapi.OpUnpublish:
		if err := s.client.RemoveConfigData(ctx, req.Namespace, req.Name, req.ContainerID, req.IfName); err != nil {
			return s.fail(err, podapi.ErrAPI)
		}
		return s.answer(&podapi.Response{})
	}
	return s.fail(fmt.Errorf("unknown op %q", req.Op), podapi.ErrAPI)
}

func (s *server) answer(r *podapi.Response) *podapi.Response {
	if s.client != nil {
		s.requests += s.client.Requests() - s.before
		s.before = s.client.Requests()
	}
	r.Requests = s.requests
	return r
}

func (s *server) fail(err error, kind error) *podapi.Response {
	return s.answer(&podapi.Response{Error: podapi.EncodeError(err, kind)})
}

// maxClientAge bounds how long Clients keeps a client: a new one reads the
// kubeconfig's certificate authority and other files again.
const maxClientAge = time.Minute

// Clients makes a client per kubeconfig file and request bound and keeps it,
// with its connections to the API server, until the file changes or
// maxClientAge passes. Safe for concurrent use; the zero value is ready.
type Clients struct {
	mu sync.Mutex
	m  map[clientKey]*keptClient
}

type clientKey struct {
	path    string
	timeout time.Duration
}

type keptClient struct {
	c    *Client
	file os.FileInfo
	made time.Time
}

// Client returns the kept client for kubeconfig and timeout, or makes one.
func (cs *Clients) Client(kubeconfig string, timeout time.Duration) (*Client, error) {
	st, err := os.Stat(kubeconfig)
	if err != nil {
		return nil, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	k := clientKey{kubeconfig, timeout}
	if kc := cs.m[k]; kc != nil {
		if os.SameFile(kc.file, st) && kc.file.ModTime().Equal(st.ModTime()) && kc.file.Size() == st.Size() && time.Since(kc.made) < maxClientAge {
			return kc.c, nil
		}
		// Sessions still using it keep it; its idle connections go.
		kc.c.Close()
		delete(cs.m, k)
	}
	c, err := New(kubeconfig, timeout)
	if err != nil {
		return nil, err
	}
	if cs.m == nil {
		cs.m = map[clientKey]*keptClient{}
	}
	cs.m[k] = &keptClient{c: c, file: st, made: time.Now()}
	return c, nil
}
