package vppapi_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/adapter/socketclient"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"

	"github.com/userspace-cni/userspace/pkg/vppapi"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// TestSocketClientAgainstVPP checks the socket adapter against a real VPP
// and govpp's own socket client: every message this binary registered gets
// the same ID from both, requests get replies, and the client is gone from
// VPP after Disconnect.
func TestSocketClientAgainstVPP(t *testing.T) {
	v, err := testbed.StartVPP(testbed.VPPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Stop(); err != nil {
			t.Errorf("stopping VPP: %v", err)
		}
	})
	ours := vppapi.NewSocketClient(v.APISocket, "ours", 10*time.Second)
	theirs := socketclient.NewVppClient(v.APISocket)
	for _, a := range []adapter.VppAPI{ours, theirs} {
		if err := a.Connect(); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := v.Vppctl("show", "api", "clients"); err != nil || !strings.Contains(out, "ours") {
		t.Fatalf("VPP does not list the client %q: %v\n%s", "ours", err, out)
	}
	known := 0
	for _, msgs := range api.GetRegisteredMessages() {
		for _, m := range msgs {
			want, werr := theirs.GetMsgID(m.GetMessageName(), m.GetCrcString())
			got, gerr := ours.GetMsgID(m.GetMessageName(), m.GetCrcString())
			if got != want || (werr == nil) != (gerr == nil) {
				t.Errorf("%s_%s: ID %d (%v), govpp's socket client %d (%v)", m.GetMessageName(), m.GetCrcString(), got, gerr, want, werr)
			}
			if werr == nil {
				known++
			}
		}
	}
	if known < 100 {
		t.Errorf("VPP knew only %d of the registered messages", known)
	}
	if err := theirs.Disconnect(); err != nil {
		t.Error(err)
	}
	if err := ours.Disconnect(); err != nil {
		t.Error(err)
	}

	// Through Dial (the adapter and Conn, the channel the plugin uses): a
	// request and its reply.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := vppapi.Dial(ctx, v.APISocket, "dial-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	reply := &memclnt.ControlPingReply{}
	if err := ch.SendRequest(&memclnt.ControlPing{}).ReceiveReply(reply); err != nil {
		t.Fatalf("control_ping: %v", err)
	}
	if reply.VpePID == 0 {
		t.Error("control_ping_reply without VPP's PID")
	}
	ch.Disconnect()
	// The clients are gone: VPP lists only the API clients still connected.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := v.Vppctl("show", "api", "clients")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "ours") && !strings.Contains(out, "dial-test") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("clients still registered after Disconnect:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fakeVPP accepts one connection on a socket in a fresh directory and
// hands it to serve.
func fakeVPP(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	return path
}

// frame is one message in the socket transport's framing.
func frame(msg []byte) []byte {
	h := make([]byte, 16, 16+len(msg))
	binary.BigEndian.PutUint32(h[8:12], uint32(len(msg)))
	return append(h, msg...)
}

// createReply is a sockclnt_create_reply with response and the table
// entries given, its count claiming count of them.
func createReply(response int32, count uint16, entries map[uint16]string) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint32(b[10:14], uint32(response))
	binary.BigEndian.PutUint32(b[14:18], 7)
	binary.BigEndian.PutUint16(b[18:20], count)
	for id, name := range entries {
		e := make([]byte, 66)
		binary.BigEndian.PutUint16(e, id)
		copy(e[2:], name)
		b = append(b, e...)
	}
	return b
}

// readRequest reads the client's framed sockclnt_create.
func readRequest(c net.Conn) error {
	h := make([]byte, 16)
	if _, err := io.ReadFull(c, h); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, binary.BigEndian.Uint32(h[8:12])))
	return err
}

// TestSocketClientFaults covers what a real VPP does not do on demand:
// refusing the client, a table shorter than its count, a frame length out
// of step and no answer at all. Each is an error within the timeout.
func TestSocketClientFaults(t *testing.T) {
	for name, tc := range map[string]struct {
		reply []byte // nil: never answer
		want  string
	}{
		"refused":   {frame(createReply(-1, 0, nil)), "refused the client: response -1"},
		"truncated": {frame(createReply(0, 3, map[uint16]string{16: "control_ping_51077d14"})), "3 entries do not fit"},
		"too long":  {[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, "out of step"},
		"silent":    {nil, "i/o timeout"},
	} {
		t.Run(name, func(t *testing.T) {
			path := fakeVPP(t, func(c net.Conn) {
				if readRequest(c) != nil {
					return
				}
				if tc.reply == nil {
					io.Copy(io.Discard, c)
					return
				}
				c.Write(tc.reply)
				io.Copy(io.Discard, c)
			})
			start := time.Now()
			err := vppapi.NewSocketClient(path, "t", 300*time.Millisecond).Connect()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect: %v, want an error with %q", err, tc.want)
			}
			if name == "silent" && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("a silent VPP's error is not a deadline: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Connect took %v", d)
			}
		})
	}
}

// TestSocketClientKeepsRegistered: the adapter keeps the IDs of registered
// messages only, answers unknown ones as govpp's adapters do, and hands
// VPP's later messages to core.
func TestSocketClientKeepsRegistered(t *testing.T) {
	ping := memclnt.ControlPing{}
	pingName := ping.GetMessageName() + "_" + ping.GetCrcString()
	replies := make(chan []byte, 1)
	path := fakeVPP(t, func(c net.Conn) {
		if readRequest(c) != nil {
			return
		}
		c.Write(frame(createReply(0, 2, map[uint16]string{16: pingName, 17: "not_registered_12345678"})))
		if readRequest(c) != nil { // the control_ping
			return
		}
		c.Write(frame([]byte{0, 99, 1, 2, 3, 4}))
		io.Copy(io.Discard, c)
	})
	a := vppapi.NewSocketClient(path, "t", 5*time.Second)
	a.SetMsgCallback(func(id uint16, data []byte) {
		if id == 99 {
			replies <- append([]byte(nil), data...)
		}
	})
	if err := a.Connect(); err != nil {
		t.Fatal(err)
	}
	defer a.Disconnect()
	if id, err := a.GetMsgID(ping.GetMessageName(), ping.GetCrcString()); err != nil || id != 16 {
		t.Errorf("control_ping: ID %d, %v", id, err)
	}
	var unknown *adapter.UnknownMsgError
	if _, err := a.GetMsgID("not_registered", "12345678"); !errors.As(err, &unknown) {
		t.Errorf("an unregistered message: %v, want an UnknownMsgError", err)
	}
	if err := a.SendMsg(5, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-replies:
		if len(got) != 6 {
			t.Errorf("message of %d bytes delivered, want 6", len(got))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("VPP's message was not delivered")
	}
}
