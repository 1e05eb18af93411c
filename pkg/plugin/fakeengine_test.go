package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
)

// fakeSwitch is an in-memory switch. Every OpenEngine returns a new
// connection (fakeConn) to it, so tests can tell which connection a call
// went through and whether that connection had been closed by then.
type fakeSwitch struct {
	mu sync.Mutex
	// openErr, when set, makes OpenEngine fail.
	openErr error
	// fail makes the named method ("Attach", "Detach", "Check",
	// "ListOwned", "Status") fail with the error.
	fail map[string]error
	// ports are the attachments present on the switch.
	ports map[portKey]*fakePort
	calls []call
	conns []*fakeConn
	// opens counts OpenEngine calls, failed ones included.
	opens int
	// seq numbers ports, so the data a port was created with is unique.
	seq int
	// live and maxLive count connections open at once.
	live, maxLive int
	// attachDelay makes Attach take that long, as a real switch does, so
	// that unserialized ADDs would overlap.
	attachDelay time.Duration
}

type portKey struct{ containerID, ifName string }

type fakePort struct {
	att  engine.Attachment
	data json.RawMessage
}

// call is one engine method call as the fake saw it.
type call struct {
	method string
	conn   int
	// closed says the connection had already been closed.
	closed bool
	att    *engine.Attachment
	data   json.RawMessage
}

func newFakeSwitch() *fakeSwitch {
	return &fakeSwitch{fail: map[string]error{}, ports: map[portKey]*fakePort{}}
}

// open is the plugin.EngineOpener.
func (s *fakeSwitch) open(_ context.Context, conf *netconf.NetConf, _ *policy.Policy, _ *slog.Logger) (engine.Engine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens++
	if conf == nil {
		return nil, errors.New("fake: OpenEngine without a configuration")
	}
	if s.openErr != nil {
		return nil, s.openErr
	}
	c := &fakeConn{sw: s, id: len(s.conns)}
	s.conns = append(s.conns, c)
	s.live++
	s.maxLive = max(s.maxLive, s.live)
	return c, nil
}

func (s *fakeSwitch) setFail(method string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fail, method)
	} else {
		s.fail[method] = err
	}
}

func (s *fakeSwitch) setOpenErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openErr = err
}

// addPort puts a port on the switch behind the plugin's back (one whose
// record was lost).
func (s *fakeSwitch) addPort(a engine.Attachment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.ports[portKey{a.ContainerID, a.IfName}] = &fakePort{att: a, data: portData(a, s.seq)}
}

func (s *fakeSwitch) port(containerID, ifName string) *fakePort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ports[portKey{containerID, ifName}]
}

func (s *fakeSwitch) portKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.ports {
		out = append(out, k.containerID+"/"+k.ifName)
	}
	sort.Strings(out)
	return out
}

// callsOf returns the calls of one method, in order.
func (s *fakeSwitch) callsOf(method string) []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []call
	for _, c := range s.calls {
		if c.method == method {
			out = append(out, c)
		}
	}
	return out
}

// closeCounts returns how often each connection was closed.
func (s *fakeSwitch) closeCounts() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, len(s.conns))
	for i, c := range s.conns {
		out[i] = c.closes
	}
	return out
}

// portData is the engine record of a port, as Attach returns it.
func portData(a engine.Attachment, seq int) json.RawMessage {
	d, _ := json.Marshal(map[string]any{"port": fmt.Sprintf("vhu%d", seq), "containerID": a.ContainerID, "ifName": a.IfName})
	return d
}

var errUsedAfterClose = errors.New("fake: engine used after Close")

type fakeConn struct {
	sw     *fakeSwitch
	id     int
	closes int
}

// begin records a call and returns the error it must fail with, if any.
// The caller holds sw.mu.
func (c *fakeConn) begin(method string, a *engine.Attachment, data json.RawMessage) error {
	var ac *engine.Attachment
	if a != nil {
		cp := *a
		if a.Layout != nil {
			l := *a.Layout
			cp.Layout = &l
		}
		ac = &cp
	}
	c.sw.calls = append(c.sw.calls, call{method: method, conn: c.id, closed: c.closes > 0, att: ac,
		data: append(json.RawMessage(nil), data...)})
	if c.closes > 0 {
		return fmt.Errorf("%s: %w", method, errUsedAfterClose)
	}
	return c.sw.fail[method]
}

func (c *fakeConn) Attach(_ context.Context, a *engine.Attachment) (json.RawMessage, error) {
	time.Sleep(c.sw.attachDelay)
	c.sw.mu.Lock()
	defer c.sw.mu.Unlock()
	if err := c.begin("Attach", a, nil); err != nil {
		return nil, err
	}
	k := portKey{a.ContainerID, a.IfName}
	if _, ok := c.sw.ports[k]; ok {
		return nil, fmt.Errorf("fake: container %s interface %s is already attached", a.ContainerID, a.IfName)
	}
	for _, p := range c.sw.ports {
		if p.att.Layout != nil && a.Layout != nil && p.att.Layout.SocketPath() == a.Layout.SocketPath() {
			return nil, fmt.Errorf("fake: socket %s already in use", a.Layout.SocketPath())
		}
	}
	c.sw.seq++
	p := &fakePort{att: *a, data: portData(*a, c.sw.seq)}
	c.sw.ports[k] = p
	return append(json.RawMessage(nil), p.data...), nil
}

func (c *fakeConn) Detach(_ context.Context, a *engine.Attachment, data json.RawMessage) error {
	c.sw.mu.Lock()
	defer c.sw.mu.Unlock()
	if err := c.begin("Detach", a, data); err != nil {
		return err
	}
	k := portKey{a.ContainerID, a.IfName}
	p, ok := c.sw.ports[k]
	if !ok {
		return nil // already gone is fine
	}
	if data != nil && !jsonEqual(data, p.data) {
		return fmt.Errorf("fake: Detach of %s/%s with data %s, the port was created with %s", a.ContainerID, a.IfName, data, p.data)
	}
	delete(c.sw.ports, k)
	return nil
}

func (c *fakeConn) Check(_ context.Context, a *engine.Attachment, data json.RawMessage) error {
	c.sw.mu.Lock()
	defer c.sw.mu.Unlock()
	if err := c.begin("Check", a, data); err != nil {
		return err
	}
	p, ok := c.sw.ports[portKey{a.ContainerID, a.IfName}]
	if !ok {
		return fmt.Errorf("fake: no port for container %s interface %s", a.ContainerID, a.IfName)
	}
	if !jsonEqual(data, p.data) {
		return fmt.Errorf("fake: CHECK with data %s, the port was created with %s", data, p.data)
	}
	return nil
}

// Restore puts the port back as Attach would, unless the switch has it.
func (c *fakeConn) Restore(_ context.Context, a *engine.Attachment, data json.RawMessage) (json.RawMessage, error) {
	c.sw.mu.Lock()
	defer c.sw.mu.Unlock()
	if err := c.begin("Restore", a, data); err != nil {
		return nil, err
	}
	k := portKey{a.ContainerID, a.IfName}
	if p, ok := c.sw.ports[k]; ok {
		return append(json.RawMessage(nil), p.data...), nil
	}
	c.sw.seq++
	p := &fakePort{att: *a, data: portData(*a, c.sw.seq)}
	c.sw.ports[k] = p
	return append(json.RawMessage(nil), p.data...), nil
}

// losePorts empties the switch, as a restart does.
func (s *fakeSwitch) losePorts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ports = map[portKey]*fakePort{}
}

func (c *fakeConn) ListOwned(_ context.Context) ([]engine.Owned, error) {
	c.sw.mu.Lock()
	defer c.sw.mu.Unlock()
	if err := c.begin("ListOwned", nil, nil); err != nil {
		return nil, err
	}
	var out []engine.Owned
	for _, p := range c.sw.ports {
		o := engine.Owned{ContainerID: p.att.ContainerID, IfName: p.att.IfName, Network: p.att.Network}
		if p.att.Layout != nil {
			o.SocketPath = p.att.Layout.SocketPath()
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerID+out[i].IfName < out[j].ContainerID+out[j].IfName })
	return out, nil
}

func (c *fakeConn) Status(_ context.Context) error {
	c.sw.mu.Lock()
	defer c.sw.mu.Unlock()
	return c.begin("Status", nil, nil)
}

func (c *fakeConn) Close() {
	c.sw.mu.Lock()
	defer c.sw.mu.Unlock()
	if c.closes == 0 {
		c.sw.live--
	}
	c.closes++
}

var _ engine.Engine = (*fakeConn)(nil)

// jsonEqual compares two JSON documents, not their bytes: the record stores
// the engine data re-indented.
func jsonEqual(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}
