package testbed

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// OVSDBProxy sits between OVSDB clients and a real ovsdb-server's unix
// socket and injects the faults a real server cannot be made to produce on
// demand: replies that are lost after the server committed the request, and
// replies that come late. Everything else passes through unchanged, so the
// clients still talk to the real database.
type OVSDBProxy struct {
	// Socket is where clients connect (use "unix:"+Socket as the endpoint).
	Socket string
	server string
	ln     net.Listener

	mu    sync.Mutex
	rules []*ReplyRule
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// ReplyRule drops or delays the replies to requests that Match accepts.
type ReplyRule struct {
	// Match sees each request's method and params (raw JSON).
	Match func(method string, params json.RawMessage) bool
	// Drop loses the reply (the request still reaches the server).
	Drop bool
	// Delay holds the reply back this long.
	Delay time.Duration
	// Times is how many requests the rule applies to (0: all).
	Times int

	hits atomic.Int64
}

// Hits is how many requests the rule applied to.
func (r *ReplyRule) Hits() int { return int(r.hits.Load()) }

// StartOVSDBProxy listens on socket and forwards to the server's socket.
func StartOVSDBProxy(socket, server string) (*OVSDBProxy, error) {
	_ = os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	p := &OVSDBProxy{Socket: socket, server: server, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Add installs a rule; the first matching rule applies.
func (p *OVSDBProxy) Add(r *ReplyRule) *ReplyRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
	return r
}

// Clear removes every rule.
func (p *OVSDBProxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Close stops accepting and closes every connection.
func (p *OVSDBProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *OVSDBProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("unix", p.server)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		pending := &pendingReplies{rules: map[string]*ReplyRule{}}
		p.wg.Add(2)
		go p.pipe(c, s, pending, true)
		go p.pipe(s, c, pending, false)
	}
}

// pendingReplies maps the ids of requests in flight to the rule their reply
// gets.
type pendingReplies struct {
	mu    sync.Mutex
	rules map[string]*ReplyRule
}

type rpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// pipe copies JSON-RPC messages from src to dst. Requests (toServer) are
// matched against the rules; replies get what their request's rule says.
func (p *OVSDBProxy) pipe(src, dst net.Conn, pending *pendingReplies, toServer bool) {
	defer p.wg.Done()
	defer func() { _ = src.Close(); _ = dst.Close() }()
	dec := json.NewDecoder(src)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return
		}
		var m rpcMessage
		_ = json.Unmarshal(raw, &m)
		id := string(bytes.TrimSpace(m.ID))
		if toServer {
			if m.Method != "" && id != "" && id != "null" {
				if r := p.match(m.Method, m.Params); r != nil {
					pending.mu.Lock()
					pending.rules[id] = r
					pending.mu.Unlock()
				}
			}
		} else if m.Method == "" && id != "" {
			pending.mu.Lock()
			r := pending.rules[id]
			delete(pending.rules, id)
			pending.mu.Unlock()
			if r != nil && r.Drop {
				continue
			}
			if r != nil && r.Delay > 0 {
				time.Sleep(r.Delay)
			}
		}
		if _, err := dst.Write(raw); err != nil {
			return
		}
	}
}

func (p *OVSDBProxy) match(method string, params json.RawMessage) *ReplyRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if (r.Times == 0 || r.Hits() < r.Times) && r.Match(method, params) {
			r.hits.Add(1)
			return r
		}
	}
	return nil
}

// TransactInserts matches a transact request that inserts into table.
func TransactInserts(table string) func(string, json.RawMessage) bool {
	return func(method string, params json.RawMessage) bool {
		if method != "transact" {
			return false
		}
		var ps []json.RawMessage
		if json.Unmarshal(params, &ps) != nil {
			return false
		}
		for _, op := range ps {
			var o struct {
				Op    string `json:"op"`
				Table string `json:"table"`
			}
			if json.Unmarshal(op, &o) == nil && o.Op == "insert" && o.Table == table {
				return true
			}
		}
		return false
	}
}
