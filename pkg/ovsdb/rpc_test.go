package ovsdb

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"
)

// scriptServer answers each request on a unix socket with handle's
// messages (written in order), for testing the JSON-RPC client.
func scriptServer(t *testing.T, handle func(req map[string]any) []any) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "db.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				dec, enc := json.NewDecoder(bufio.NewReader(c)), json.NewEncoder(c)
				for {
					var req map[string]any
					if dec.Decode(&req) != nil {
						return
					}
					if req["id"] == "echo-1" { // the client's answer to our echo
						continue
					}
					for _, m := range handle(req) {
						if enc.Encode(m) != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return "unix:" + sock
}

func TestConnTransactAnswersEcho(t *testing.T) {
	endpoint := scriptServer(t, func(req map[string]any) []any {
		if req["method"] != "transact" {
			return []any{map[string]any{"id": req["id"], "result": nil, "error": "unexpected"}}
		}
		// An inactivity probe and a notification arrive before the reply.
		return []any{
			map[string]any{"id": "echo-1", "method": "echo", "params": []any{}},
			map[string]any{"id": nil, "method": "locked", "params": []any{"x"}},
			map[string]any{"id": req["id"], "result": []any{map[string]any{"rows": []any{map[string]any{"name": "br0"}}}}, "error": nil},
		}
	})
	c, err := dial(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.transact(context.Background(), selectOp("Bridge", nil, "name"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || res[0].Rows[0]["name"] != "br0" {
		t.Fatalf("result %+v", res)
	}
}

func TestConnErrorsAndDeadline(t *testing.T) {
	endpoint := scriptServer(t, func(req map[string]any) []any {
		switch req["method"] {
		case "lock":
			return []any{map[string]any{"id": req["id"], "result": map[string]any{"locked": true}, "error": nil}}
		case "transact":
			params := req["params"].([]any)
			if params[0] != database {
				return []any{map[string]any{"id": req["id"], "result": nil, "error": "unknown database"}}
			}
			return nil // never answers: the caller's deadline must end the wait
		}
		return nil
	})
	c, err := dial(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if granted, err := c.lock(context.Background(), vswitchdLock); err != nil || !granted {
		t.Fatalf("lock: %v %v", granted, err)
	}
	var rerr *rpcError
	if err := c.call(context.Background(), "transact", []any{"Nope", ovs.Operation{Op: "select", Table: "Bridge"}}, nil); !errors.As(err, &rerr) {
		t.Fatalf("want an rpcError for a refused request, got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.transact(ctx, selectOp("Bridge", nil))
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the deadline took %v to end the call", d)
	}
}

func TestDialRefusesNonUnix(t *testing.T) {
	if _, err := dial(context.Background(), "tcp:127.0.0.1:6640"); err == nil || !strings.Contains(err.Error(), "unix") {
		t.Errorf("want a refusal naming unix sockets, got %v", err)
	}
}

// TestConnRecoversAfterTimeout: after a call is abandoned at its deadline,
// the next call still works (on a fresh connection), as a rollback needs.
func TestConnRecoversAfterTimeout(t *testing.T) {
	var stalled atomic.Bool
	endpoint := scriptServer(t, func(req map[string]any) []any {
		if stalled.CompareAndSwap(false, true) {
			return nil // stall the first request
		}
		return []any{map[string]any{"id": req["id"], "result": []any{map[string]any{}}, "error": nil}}
	})
	c, err := dial(context.Background(), endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.transact(ctx, selectOp("Bridge", nil)); err == nil {
		t.Fatal("stalled call succeeded")
	}
	if _, err := c.transact(context.Background(), selectOp("Bridge", nil)); err != nil {
		t.Fatalf("call after a timeout: %v", err)
	}
}
