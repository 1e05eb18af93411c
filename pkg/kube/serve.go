package kube

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/userspace-cni/userspace/pkg/podapi"
)

// maxRequestLine bounds one request line from the plugin.
const maxRequestLine = 1 << 20

// Serve is the helper process's loop (cmd/userspace-kube): it answers the
// plugin's podapi requests read from r, one JSON line each, on w, until r
// ends. The client for kubeconfig is made on the first request, so that a
// kubeconfig that cannot be used is that request's answer. timeout bounds
// each HTTP request.
func Serve(r io.Reader, w io.Writer, kubeconfig string, timeout time.Duration) error {
	s := &server{kubeconfig: kubeconfig, timeout: timeout}
	defer s.close()
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

// server is one session's state: the client and the pod OpPod read.
type server struct {
	kubeconfig string
	timeout    time.Duration
	client     *Client
	pod        *corev1.Pod
}

func (s *server) close() {
	if s.client != nil {
		s.client.Close()
	}
}

func (s *server) handle(line []byte) *podapi.Response {
	req := &podapi.Request{}
	if err := json.Unmarshal(line, req); err != nil {
		return s.fail(fmt.Errorf("unreadable request: %w", err), podapi.ErrAPI)
	}
	if s.client == nil {
		c, err := New(s.kubeconfig, s.timeout)
		if err != nil {
			return s.fail(fmt.Errorf("kubeconfig: %w", err), podapi.ErrConfig)
		}
		s.client = c
	}
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
		r.Requests = s.client.Requests()
	}
	return r
}

func (s *server) fail(err error, kind error) *podapi.Response {
	return s.answer(&podapi.Response{Error: podapi.EncodeError(err, kind)})
}
