package podapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// script writes a helper stand-in: the real one (cmd/userspace-kube) is
// run against an API server by the plugin's tests; these are its faults.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), HelperName)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func start(t *testing.T, path string) *Session {
	t.Helper()
	s, err := Open("", path, "/kubeconfig", time.Second, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestSessionAnswers(t *testing.T) {
	// Answers a pod, then an error of each request after.
	s := start(t, script(t, `read -r req
case "$req" in *'"op":"pod"'*'"kubeconfig":"/kubeconfig","requestTimeoutMs":1000'*'"uid":"u-1"'*'"volume":"shared"'*) ;; *) echo "bad request $req" >&2; exit 1;; esac
echo '{"pod":{"uid":"u-1","dir":"/host/d","mappedDir":"/var/run/app","emptyDir":true},"requests":1}'
read -r req
echo '{"error":{"kind":"conflict","verb":"patch","namespace":"ns","name":"p","message":"409 again"},"requests":5}'
read -r req
echo '{"error":{"kind":"config","message":"kubeconfig: no such file"},"requests":5}'
`))
	ctx := context.Background()
	pod, err := s.Pod(ctx, "ns", "p", "u-1", "shared", "/var/lib/kubelet")
	if err != nil {
		t.Fatal(err)
	}
	if *pod != (Pod{UID: "u-1", Dir: "/host/d", MappedDir: "/var/run/app", EmptyDir: true}) || s.Requests() != 1 {
		t.Errorf("pod %+v, requests %d", *pod, s.Requests())
	}
	err = s.Publish(ctx, nil, "")
	if !IsConflict(err) || !strings.Contains(err.Error(), "patch pod ns/p") || !strings.Contains(err.Error(), "409 again") || s.Requests() != 5 {
		t.Errorf("publish: %v (requests %d), want a conflict naming the pod and the cause", err, s.Requests())
	}
	err = s.Unpublish(ctx, "ns", "p", "c", "net1")
	if !IsConfig(err) || err.Error() != "kubeconfig: no such file" {
		t.Errorf("unpublish: %v, want the config error as sent", err)
	}
}

// A helper that never answers is killed when the call's time is up, and
// the session refuses to go on (answers could no longer be matched).
func TestSessionHungHelper(t *testing.T) {
	s := start(t, script(t, "exec sleep 60\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := s.Pod(ctx, "ns", "p", "", "", "")
	if !IsUnreachable(err) || !strings.Contains(err.Error(), "pod ns/p") {
		t.Errorf("got %v, want unreachable naming the pod", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
	if err2 := s.Publish(context.Background(), nil, ""); !errors.Is(err2, ErrUnreachable) {
		t.Errorf("second call on a broken session: %v", err2)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return: the hung helper was not killed")
	}
}

func TestSessionHelperFails(t *testing.T) {
	for name, body := range map[string]string{
		"exits":   "echo dying >&2; exit 3\n",
		"garbage": "read -r req; echo 'not json'; sleep 5\n",
	} {
		t.Run(name, func(t *testing.T) {
			s := start(t, script(t, body))
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err := s.Pod(ctx, "ns", "p", "", "", "")
			if !IsUnreachable(err) || !strings.Contains(err.Error(), HelperName) {
				t.Errorf("got %v, want unreachable naming the helper", err)
			}
		})
	}
}

func TestStartMissingHelper(t *testing.T) {
	p := filepath.Join(t.TempDir(), HelperName)
	if _, err := Open("", p, "/k", time.Second, os.Stderr); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("got %v, want an error naming %s", err, p)
	}
}

// Every kind survives the wire; an unknown kind reads as ErrAPI.
func TestWireErrorKinds(t *testing.T) {
	for name, kind := range kindNames {
		w := EncodeError(&Error{Verb: "get", Namespace: "ns", Name: "p", Kind: kind, Err: errors.New("cause")}, ErrAPI)
		if w.Kind != name {
			t.Errorf("%v encoded as %q, want %q", kind, w.Kind, name)
		}
		err := w.decode()
		if !errors.Is(err, kind) || err.Error() != "get pod ns/p: "+kind.Error()+": cause" {
			t.Errorf("%s decoded as %v", name, err)
		}
	}
	plain := EncodeError(errors.New("bad volume"), ErrConfig)
	if err := plain.decode(); !IsConfig(err) || err.Error() != "bad volume" {
		t.Errorf("plain error decoded as %v", err)
	}
	if err := (&WireError{Kind: "from-the-future", Message: "x"}).decode(); !errors.Is(err, ErrAPI) {
		t.Errorf("unknown kind decoded as %v", err)
	}
}

// A publish whose answer never comes breaks the session; the rollback's
// unpublish still gets through, on a new helper.
func TestSessionUnpublishAfterBreak(t *testing.T) {
	count := filepath.Join(t.TempDir(), "runs")
	s := start(t, script(t, `echo run >>`+count+`
if [ "$(wc -l <`+count+`)" -eq 1 ]; then exec sleep 60; fi
read -r req
case "$req" in *'"op":"unpublish"'*'"containerId":"c-1"'*) echo '{"requests":1}';; *) exit 1;; esac
`))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Publish(ctx, nil, ""); !IsUnreachable(err) {
		t.Fatalf("publish to a hung helper: %v", err)
	}
	if err := s.Unpublish(context.Background(), "ns", "p", "c-1", "net1"); err != nil {
		t.Errorf("unpublish after the break: %v", err)
	}
}

// fakeAgent accepts sessions on a socket and hands each connection to
// serve; it stands in for the node agent's faults.
func fakeAgent(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), AgentSocket)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return path
}

const podAnswer = `{"pod":{"uid":"u-1"},"requests":1}`

// An agent that accepts and never answers holds a session's first request
// for one API request's time and a grace, not for the verb's: the request
// then goes to the helper.
func TestSessionHungAgent(t *testing.T) {
	agent := fakeAgent(t, func(c net.Conn) { time.Sleep(time.Minute); c.Close() })
	helper := script(t, "read -r req\necho '"+podAnswer+"'\n")
	s, err := Open(agent, helper, "/kubeconfig", 500*time.Millisecond, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Now()
	pod, err := s.Pod(ctx, "ns", "p", "", "", "")
	if err != nil || pod.UID != "u-1" || !strings.Contains(s.Via(), "helper") {
		t.Fatalf("pod %+v via %s: %v, want the helper's answer", pod, s.Via(), err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("the hung agent held the request %v", d)
	}
}

// An agent that answers is used, and the helper never starts.
func TestSessionAgentAnswers(t *testing.T) {
	agent := fakeAgent(t, func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			fmt.Fprintln(c, podAnswer)
		}
	})
	s, err := Open(agent, filepath.Join(t.TempDir(), "no-helper"), "/kubeconfig", time.Second, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if pod, err := s.Pod(context.Background(), "ns", "p", "", "", ""); err != nil || pod.UID != "u-1" || !strings.Contains(s.Via(), "agent") {
		t.Fatalf("pod %+v via %s: %v", pod, s.Via(), err)
	}
}
