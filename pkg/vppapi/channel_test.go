package vppapi_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/api"
	interfaces "go.fd.io/govpp/binapi/interface"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/codec"

	"github.com/userspace-cni/userspace/pkg/vppapi"
)

// scripted is an adapter whose VPP answers each request with what answer
// returns for it (any number of replies, with any contexts).
type scripted struct {
	ids    map[string]uint16
	cb     adapter.MsgCallback
	answer func(id uint16, ctx uint32) []encoded
}

type encoded struct {
	msg api.Message
	ctx uint32
}

func newScripted(answer func(id uint16, ctx uint32) []encoded) *scripted {
	s := &scripted{ids: map[string]uint16{}, answer: answer}
	for i, m := range []api.Message{
		&memclnt.ControlPing{}, &memclnt.ControlPingReply{},
		&interfaces.SwInterfaceSetFlags{}, &interfaces.SwInterfaceSetFlagsReply{},
		&interfaces.SwInterfaceDump{}, &interfaces.SwInterfaceDetails{},
	} {
		s.ids[m.GetMessageName()+"_"+m.GetCrcString()] = uint16(100 + i)
	}
	return s
}

func (s *scripted) id(m api.Message) uint16 { return s.ids[m.GetMessageName()+"_"+m.GetCrcString()] }

func (s *scripted) Connect() error                        { return nil }
func (s *scripted) Disconnect() error                     { return nil }
func (s *scripted) SetMsgCallback(cb adapter.MsgCallback) { s.cb = cb }
func (s *scripted) WaitReady() error                      { return nil }
func (s *scripted) GetMsgID(name, crc string) (uint16, error) {
	if id, ok := s.ids[name+"_"+crc]; ok {
		return id, nil
	}
	return 0, &adapter.UnknownMsgError{MsgName: name, MsgCrc: crc}
}

func (s *scripted) SendMsg(ctx uint32, data []byte) error {
	id := uint16(data[0])<<8 | uint16(data[1])
	for _, r := range s.answer(id, ctx) {
		b, err := codec.DefaultCodec.EncodeMsg(r.msg, s.id(r.msg))
		if err != nil {
			return err
		}
		b[2], b[3], b[4], b[5] = byte(r.ctx>>24), byte(r.ctx>>16), byte(r.ctx>>8), byte(r.ctx)
		s.cb(s.id(r.msg), b)
	}
	return nil
}

func dialScripted(t *testing.T, s *scripted) api.Channel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := vppapi.Dial(ctx, "/nonexistent/api.sock", "t", s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Disconnect)
	return c
}

// TestConnRepliesInOrder: replies are matched to requests by context, a
// late reply to an abandoned request is skipped, a retval becomes an
// api.VPPApiError and a dump ends at the control ping's reply.
func TestConnRepliesInOrder(t *testing.T) {
	var s *scripted
	s = newScripted(func(id uint16, ctx uint32) []encoded {
		switch id {
		case s.id(&interfaces.SwInterfaceSetFlags{}):
			// The first request's reply never comes, the second one's is
			// preceded by a stale copy of the first's and has retval -2.
			if ctx == 1 {
				return nil
			}
			return []encoded{{&interfaces.SwInterfaceSetFlagsReply{}, 1}, {&interfaces.SwInterfaceSetFlagsReply{Retval: -2}, ctx}}
		case s.id(&interfaces.SwInterfaceDump{}):
			return []encoded{{&interfaces.SwInterfaceDetails{SwIfIndex: 1}, ctx}, {&interfaces.SwInterfaceDetails{SwIfIndex: 2}, ctx}}
		case s.id(&memclnt.ControlPing{}):
			return []encoded{{&memclnt.ControlPingReply{}, ctx}}
		}
		return nil
	})
	ch := dialScripted(t, s)
	ch.SetReplyTimeout(100 * time.Millisecond)
	err := ch.SendRequest(&interfaces.SwInterfaceSetFlags{}).ReceiveReply(&interfaces.SwInterfaceSetFlagsReply{})
	if !errors.Is(err, vppapi.ErrReplyTimeout) {
		t.Fatalf("unanswered request: %v, want ErrReplyTimeout", err)
	}
	err = ch.SendRequest(&interfaces.SwInterfaceSetFlags{}).ReceiveReply(&interfaces.SwInterfaceSetFlagsReply{})
	if !vppapi.IsRetval(err, -2) {
		t.Fatalf("retval -2: %v", err)
	}
	var got []uint32
	err = vppapi.ReadDump(ch.SendMultiRequest(&interfaces.SwInterfaceDump{}), "sw_interface_dump", func(d *interfaces.SwInterfaceDetails) {
		got = append(got, uint32(d.SwIfIndex))
	})
	if err != nil || len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("dump: %v, %v", got, err)
	}
}

// TestConnLostReply: a reply to a later request means the earlier one's
// was lost; that one errs and the later reply is kept for its request.
func TestConnLostReply(t *testing.T) {
	var s *scripted
	s = newScripted(func(id uint16, ctx uint32) []encoded {
		if id == s.id(&interfaces.SwInterfaceSetFlags{}) && ctx == 2 {
			return []encoded{{&interfaces.SwInterfaceSetFlagsReply{}, ctx}}
		}
		return nil
	})
	ch := dialScripted(t, s)
	first := ch.SendRequest(&interfaces.SwInterfaceSetFlags{})
	second := ch.SendRequest(&interfaces.SwInterfaceSetFlags{})
	if err := first.ReceiveReply(&interfaces.SwInterfaceSetFlagsReply{}); err == nil || !strings.Contains(err.Error(), "did not reply to request 1") {
		t.Fatalf("lost reply: %v", err)
	}
	if err := second.ReceiveReply(&interfaces.SwInterfaceSetFlagsReply{}); err != nil {
		t.Fatalf("the later request's reply: %v", err)
	}
}

// TestConnWrongReply: a reply of another type than asked for is an error
// naming the expected message, and unknown messages are refused before
// anything is sent.
func TestConnWrongReply(t *testing.T) {
	s := newScripted(func(id uint16, ctx uint32) []encoded {
		return []encoded{{&memclnt.ControlPingReply{}, ctx}}
	})
	ch := dialScripted(t, s)
	err := ch.SendRequest(&interfaces.SwInterfaceSetFlags{}).ReceiveReply(&interfaces.SwInterfaceSetFlagsReply{})
	if err == nil || !strings.Contains(err.Error(), "sw_interface_set_flags_reply") {
		t.Fatalf("wrong reply type: %v", err)
	}
	err = ch.SendRequest(&interfaces.CreateLoopback{}).ReceiveReply(&interfaces.CreateLoopbackReply{})
	if err == nil || !strings.Contains(err.Error(), "create_loopback") {
		t.Fatalf("unknown message: %v", err)
	}
	var cerr *api.CompatibilityError
	if err := ch.CheckCompatiblity(&interfaces.SwInterfaceSetFlags{}, &interfaces.CreateLoopback{}); !errors.As(err, &cerr) ||
		len(cerr.IncompatibleMessages) != 1 || !strings.HasPrefix(cerr.IncompatibleMessages[0], "create_loopback_") {
		t.Fatalf("compatibility: %v", err)
	}
}
