package ovsdb

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"
)

// conn is a minimal OVSDB JSON-RPC 1.0 connection (RFC 7047) for a
// short-lived process: transact and lock, nothing else. The operations,
// conditions, rows and errors are libovsdb's own types; only the transport
// is ours. libovsdb's client is made for long-running controllers (cache,
// monitors, reconnection, metrics): linking it adds about 2 ms to every
// plugin start-up, and its connect fetches and parses the whole schema
// (another 2-3 ms), both on every CNI invocation for nothing the plugin uses.
type conn struct {
	path   string
	c      net.Conn
	enc    *json.Encoder
	dec    *json.Decoder
	mu     sync.Mutex // one request at a time: replies come back in order
	nextID int
	// broken is set after an I/O error or an abandoned request: the stream
	// can no longer be trusted, so the next call redials (a failed ADD's
	// rollback still needs to reach the switch after a timeout).
	broken bool
}

// database is the OVSDB database the engine works on.
const database = "Open_vSwitch"

// dial connects to an OVSDB unix socket endpoint ("unix:/path").
func dial(ctx context.Context, endpoint string) (*conn, error) {
	path, ok := strings.CutPrefix(endpoint, "unix:")
	if !ok {
		return nil, fmt.Errorf("unsupported OVSDB endpoint %q (want unix:/path)", endpoint)
	}
	c := &conn{path: path}
	if err := c.open(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *conn) open(ctx context.Context) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return err
	}
	c.c, c.enc, c.dec, c.broken = nc, json.NewEncoder(nc), json.NewDecoder(bufio.NewReader(nc)), false
	return nil
}

func (c *conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c.Close()
}

// rpcError is an error reply to a whole request (not to one operation).
type rpcError struct {
	Method string
	Value  any
}

func (e *rpcError) Error() string { return fmt.Sprintf("OVSDB %s: %v", e.Method, e.Value) }

// call sends one request and waits for its reply, answering the server's
// echo requests meanwhile. The context bounds the whole exchange.
func (c *conn) call(ctx context.Context, method string, params []any, result any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken {
		_ = c.c.Close()
		if err := c.open(ctx); err != nil {
			return fmt.Errorf("OVSDB reconnect: %w", err)
		}
	}
	c.nextID++
	id := c.nextID
	stop, err := c.bound(ctx)
	if err != nil {
		return err
	}
	defer stop()
	req, err := appendRequest(nil, id, method, params)
	if err != nil {
		return fmt.Errorf("OVSDB %s: encoding the request: %w", method, err)
	}
	if _, err := c.c.Write(append(req, '\n')); err != nil {
		return c.ioError(ctx, err)
	}
	for {
		msg, err := c.next(ctx)
		if err != nil {
			return err
		}
		if msg.Method != "" {
			continue // a notification (e.g. "locked"): not for a one-shot client
		}
		if n, ok := msg.ID.(float64); !ok || int(n) != id {
			return fmt.Errorf("OVSDB %s: reply with unexpected id %v", method, msg.ID)
		}
		if msg.Error != nil {
			return &rpcError{Method: method, Value: msg.Error}
		}
		if result == nil {
			return nil
		}
		if err := json.Unmarshal(msg.Result, result); err != nil {
			return fmt.Errorf("OVSDB %s: decoding reply: %w", method, err)
		}
		return nil
	}
}

// message is any JSON-RPC message from the server: a reply, a request or a
// notification.
type message struct {
	ID     any             `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  any             `json:"error"`
}

// bound makes ctx bound every read and write on the connection until the
// returned function is called.
func (c *conn) bound(ctx context.Context) (stop func() bool, err error) {
	deadline, _ := ctx.Deadline() // zero, no deadline, when ctx has none
	if err := c.c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// A cancelled context interrupts a blocked read or write. The closure
	// holds this connection, not c.c: it may run after a redial.
	nc := c.c
	return context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) }), nil
}

// next reads the server's next message other than an echo request, which
// it answers (the server's inactivity probe: echo the params back).
func (c *conn) next(ctx context.Context) (*message, error) {
	for {
		var msg message
		if err := c.dec.Decode(&msg); err != nil {
			return nil, c.ioError(ctx, err)
		}
		if msg.Method != "echo" {
			return &msg, nil
		}
		if err := c.enc.Encode(map[string]any{"result": msg.Params, "error": nil, "id": msg.ID}); err != nil {
			return nil, c.ioError(ctx, err)
		}
	}
}

func (c *conn) ioError(ctx context.Context, err error) error {
	c.broken = true
	if ctx.Err() != nil {
		return fmt.Errorf("OVSDB: %w", ctx.Err())
	}
	// The socket deadline is the context's: it can fire a moment before the
	// context itself reports expiry.
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("OVSDB: %w", context.DeadlineExceeded)
	}
	return fmt.Errorf("OVSDB connection: %w", err)
}

// transact runs ops as one transaction and returns the per-operation
// results (RFC 7047 4.1.3); callers check them with ovs.CheckOperationResults.
func (c *conn) transact(ctx context.Context, ops ...ovs.Operation) ([]ovs.OperationResult, error) {
	params := make([]any, 0, len(ops)+1)
	params = append(params, database)
	for _, op := range ops {
		params = append(params, op)
	}
	var res []ovs.OperationResult
	if err := c.call(ctx, "transact", params, &res); err != nil {
		return nil, err
	}
	return res, nil
}

// lock requests a named OVSDB lock and reports whether it was granted at
// once (RFC 7047 4.1.8). The lock is released when the connection closes.
func (c *conn) lock(ctx context.Context, name string) (bool, error) {
	var res struct {
		Locked bool `json:"locked"`
	}
	if err := c.call(ctx, "lock", []any{name}, &res); err != nil {
		return false, err
	}
	return res.Locked, nil
}

// unlock releases a named OVSDB lock (or withdraws a queued request).
func (c *conn) unlock(ctx context.Context, name string) error {
	return c.call(ctx, "unlock", []any{name}, nil)
}

// waitLocked waits for the server's "locked" notification of a lock
// requested earlier and not granted at once, answering echo requests
// meanwhile. Only ctx bounds the wait.
func (c *conn) waitLocked(ctx context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken {
		return errors.New("OVSDB connection broken")
	}
	stop, err := c.bound(ctx)
	if err != nil {
		return err
	}
	defer stop()
	for {
		msg, err := c.next(ctx)
		if err != nil {
			return err
		}
		var p []string
		if msg.Method == "locked" && json.Unmarshal(msg.Params, &p) == nil && len(p) == 1 && p[0] == name {
			return nil
		}
	}
}
