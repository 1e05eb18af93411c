package vppapi

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/codec"
)

// ErrReplyTimeout is the error of a reply that did not come within the
// channel's reply timeout.
var ErrReplyTimeout = errors.New("no reply from VPP within the timeout")

// Conn is one connection to VPP's API and its only channel (api.Channel):
// requests are encoded and written by the caller's goroutine, and replies
// matched to them by context as the caller asks for them. It does what
// govpp's core does for the plugin and the pod helpers, which make one
// connection, send a few requests in order and exit: core's connection
// allocates a 32767-entry channel ID pool (64 KiB, copied again when the
// channel closes), starts goroutines per connection and channel and logs
// through logrus, which together were a tenth of a VPP verb's page faults
// (issue 13). govpp's binapi and codec encode and decode every message.
type Conn struct {
	a       adapter.VppAPI
	timeout time.Duration

	pingID, pingReplyID uint16

	mu   sync.Mutex // the send side: context numbers, the pending reply
	seq  uint32
	held *reply // a reply read ahead of the request it answers

	qmu    sync.Mutex // the replies the adapter delivered, in order
	queue  []reply
	notify chan struct{}
}

type reply struct {
	id   uint16
	data []byte
}

func newConn(a adapter.VppAPI, timeout time.Duration) *Conn {
	c := &Conn{a: a, timeout: timeout, notify: make(chan struct{}, 1)}
	a.SetMsgCallback(c.deliver)
	return c
}

// deliver queues a message from VPP. It never blocks: the adapter may call
// it from the goroutine that sends (a test's fake) or from its reader,
// which must stay free to see the socket close.
func (c *Conn) deliver(id uint16, data []byte) {
	c.qmu.Lock()
	c.queue = append(c.queue, reply{id, append([]byte(nil), data...)})
	c.qmu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// start looks up the IDs of the control ping that ends every dump.
func (c *Conn) start() error {
	var err error
	if c.pingID, err = c.msgID(&memclnt.ControlPing{}); err != nil {
		return err
	}
	c.pingReplyID, err = c.msgID(&memclnt.ControlPingReply{})
	return err
}

func (c *Conn) msgID(m api.Message) (uint16, error) {
	id, err := c.a.GetMsgID(m.GetMessageName(), m.GetCrcString())
	if err != nil {
		return 0, fmt.Errorf("message %s_%s is not known to this VPP: %w", m.GetMessageName(), m.GetCrcString(), err)
	}
	return id, nil
}

// Disconnect closes the connection.
func (c *Conn) Disconnect() { _ = c.a.Disconnect() }

// SendRequest sends one request; its reply is read by ReceiveReply.
func (c *Conn) SendRequest(msg api.Message) api.RequestCtx {
	ctx, err := c.send(msg, false)
	return &request{c: c, ctx: ctx, err: err}
}

// SendMultiRequest sends a dump followed by a control ping with the same
// context: VPP answers in order, so the ping's reply ends the dump.
func (c *Conn) SendMultiRequest(msg api.Message) api.MultiRequestCtx {
	ctx, err := c.send(msg, true)
	return &multiRequest{request{c: c, ctx: ctx, err: err}}
}

func (c *Conn) send(msg api.Message, multi bool) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	ctx := c.seq
	id, err := c.msgID(msg)
	if err != nil {
		return ctx, err
	}
	data, err := codec.DefaultCodec.EncodeMsg(msg, id)
	if err != nil {
		return ctx, fmt.Errorf("encoding %s: %w", msg.GetMessageName(), err)
	}
	if err := c.a.SendMsg(ctx, data); err != nil {
		return ctx, fmt.Errorf("sending %s: %w", msg.GetMessageName(), err)
	}
	if multi {
		ping, err := codec.DefaultCodec.EncodeMsg(&memclnt.ControlPing{}, c.pingID)
		if err == nil {
			err = c.a.SendMsg(ctx, ping)
		}
		if err != nil {
			return ctx, fmt.Errorf("sending the control ping after %s: %w", msg.GetMessageName(), err)
		}
	}
	return ctx, nil
}

// SubscribeNotification is not supported: nothing here listens for VPP's
// events.
func (c *Conn) SubscribeNotification(chan api.Message, api.Message) (api.SubscriptionCtx, error) {
	return nil, errors.New("VPP event subscriptions are not supported by this client")
}

// SetReplyTimeout sets how long each ReceiveReply waits.
func (c *Conn) SetReplyTimeout(d time.Duration) {
	c.mu.Lock()
	c.timeout = d
	c.mu.Unlock()
}

// CheckCompatiblity reports the messages VPP does not know by name and CRC.
func (c *Conn) CheckCompatiblity(msgs ...api.Message) error {
	var cerr api.CompatibilityError
	for _, m := range msgs {
		name := m.GetMessageName() + "_" + m.GetCrcString()
		if _, err := c.a.GetMsgID(m.GetMessageName(), m.GetCrcString()); err != nil {
			cerr.IncompatibleMessages = append(cerr.IncompatibleMessages, name)
		} else {
			cerr.CompatibleMessages = append(cerr.CompatibleMessages, name)
		}
	}
	if len(cerr.IncompatibleMessages) > 0 {
		return &cerr
	}
	return nil
}

// Close is a no-op: the connection's one channel ends with Disconnect.
func (c *Conn) Close() {}

// next returns the next reply for ctx: one read earlier and held, or the
// next queued one, skipping replies to requests given up on. A reply to a
// later request means ctx's reply was lost: it is held for its own turn.
func (c *Conn) next(ctx uint32, replyType api.MessageType) (reply, error) {
	c.mu.Lock()
	timeout, held := c.timeout, c.held
	c.held = nil
	c.mu.Unlock()
	var deadline <-chan time.Time
	for {
		var r reply
		if held != nil {
			r, held = *held, nil
		} else {
			var ok bool
			if r, ok = c.pop(); !ok {
				if deadline == nil {
					t := time.NewTimer(timeout)
					defer t.Stop()
					deadline = t.C
				}
				select {
				case <-c.notify:
					continue
				case <-deadline:
					return reply{}, fmt.Errorf("%w (%v)", ErrReplyTimeout, timeout)
				}
			}
		}
		// Every message VPP sends this client is a reply or a dump's
		// detail (it subscribes to no events), with its request's context.
		got, err := codec.DefaultCodec.DecodeMsgContext(r.data, replyType)
		if err != nil {
			continue // too short to carry a context: nothing waits for it
		}
		switch {
		case got < ctx:
			continue // the reply to a request whose wait timed out
		case got > ctx:
			c.mu.Lock()
			c.held = &r
			c.mu.Unlock()
			return reply{}, fmt.Errorf("VPP did not reply to request %d (its reply to %d came first)", ctx, got)
		}
		return r, nil
	}
}

func (c *Conn) pop() (reply, bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) == 0 {
		return reply{}, false
	}
	r := c.queue[0]
	c.queue = c.queue[1:]
	return r, true
}

// decode checks that r is a msg and decodes it, turning a non-zero retval
// into an api.VPPApiError as govpp's core does.
func (c *Conn) decode(r reply, msg api.Message) error {
	want, err := c.msgID(msg)
	if err != nil {
		return err
	}
	if r.id != want {
		return fmt.Errorf("VPP replied with message ID %d where %s (ID %d) was expected", r.id, msg.GetMessageName(), want)
	}
	if err := codec.DefaultCodec.DecodeMsg(r.data, msg); err != nil {
		return fmt.Errorf("decoding %s: %w", msg.GetMessageName(), err)
	}
	if !strings.HasSuffix(msg.GetMessageName(), "_reply") {
		return nil
	}
	f := reflect.Indirect(reflect.ValueOf(msg)).FieldByName("Retval")
	switch {
	case !f.IsValid():
		return nil
	case f.CanInt():
		return api.RetvalToVPPApiError(int32(f.Int()))
	case f.CanUint():
		return api.RetvalToVPPApiError(int32(f.Uint()))
	}
	return nil
}

type request struct {
	c   *Conn
	ctx uint32
	err error
}

func (r *request) ReceiveReply(msg api.Message) error {
	if r.err != nil {
		return r.err
	}
	rep, err := r.c.next(r.ctx, msg.GetMessageType())
	if err != nil {
		return err
	}
	return r.c.decode(rep, msg)
}

type multiRequest struct{ request }

func (r *multiRequest) ReceiveReply(msg api.Message) (last bool, err error) {
	if r.err != nil {
		return false, r.err
	}
	rep, err := r.c.next(r.ctx, msg.GetMessageType())
	if err != nil {
		return false, err
	}
	if rep.id == r.c.pingReplyID {
		return true, nil
	}
	return false, r.c.decode(rep, msg)
}
