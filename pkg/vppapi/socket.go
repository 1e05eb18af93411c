package vppapi

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/codec"
)

// socketClient is govpp's adapter.VppAPI over VPP's API socket, written
// for a process that connects once and exits (issue 13): it keeps from the
// message table VPP sends at connect time (every message VPP knows, about
// 2,500 of them) only the entries of messages this binary registered,
// reading the table entry by entry through one small buffer, where govpp's
// socketclient decodes it whole into a map. That decoding was most of the
// memory, and so of the page faults, that connecting cost a CNI call.
// Conn matches its messages to requests; govpp's binapi and codec encode
// and decode them.
type socketClient struct {
	path, name string
	timeout    time.Duration

	conn  *net.UnixConn
	r     *bufio.Reader
	index uint32
	ids   map[string]uint16 // "name_crc" to the ID VPP gave it
	delID uint16            // sockclnt_delete's ID, 0 when VPP sent none

	wmu    sync.Mutex
	cb     adapter.MsgCallback
	reader sync.WaitGroup
}

const (
	// sockclntCreateID is sockclnt_create's ID, fixed by VPP: it is sent
	// before any message table exists.
	sockclntCreateID = 15
	// headerLen is the socket transport's frame header: 8 bytes unused,
	// the message length (big-endian u32), 4 bytes unused.
	headerLen = 16
	// tableEntryLen is one vl_api_message_table_entry_t: u16 index and a
	// 64-byte NUL-padded "name_crc".
	tableEntryLen = 2 + 64
	// createReplyFixedLen is sockclnt_create_reply up to its table:
	// message ID, client index, context, response, index and count.
	createReplyFixedLen = 2 + 4 + 4 + 4 + 4 + 2
	// maxMessage bounds a frame's length: VPP's largest replies (a whole
	// message table) are a few hundred KiB; a larger length is a stream out
	// of step, not a message.
	maxMessage = 16 << 20
	// createContext and deleteContext mark the handshake's requests, as
	// govpp's socket client does.
	createContext = 123
	deleteContext = 124
)

func newSocketClient(path, name string, timeout time.Duration) *socketClient {
	return &socketClient{path: path, name: name, timeout: timeout, cb: func(uint16, []byte) {}}
}

// Connect dials the socket and registers the client, all within the
// timeout, then starts delivering VPP's messages to the callback.
func (c *socketClient) Connect() error {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: c.path, Net: "unix"})
	if err != nil {
		return err
	}
	c.conn, c.r = conn, bufio.NewReaderSize(conn, 4096)
	if err := c.register(); err != nil {
		conn.Close()
		return err
	}
	c.reader.Add(1)
	go c.readLoop()
	return nil
}

// register sends sockclnt_create and reads its reply.
func (c *socketClient) register() error {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	msg, err := codec.DefaultCodec.EncodeMsg(&memclnt.SockclntCreate{Name: c.name}, sockclntCreateID)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(msg[2:6], createContext)
	if err := c.write(msg, c.timeout); err != nil {
		return err
	}
	n, err := c.readHeader()
	if err != nil {
		return err
	}
	if err := c.readTable(n); err != nil {
		return fmt.Errorf("reading sockclnt_create_reply: %w", err)
	}
	return c.conn.SetDeadline(time.Time{})
}

// readTable reads a sockclnt_create_reply of n bytes, keeping the IDs of
// the messages registered with govpp's api package (those the binary's
// binapi packages define: all it can ever send or decode).
func (c *socketClient) readTable(n int) error {
	if n < createReplyFixedLen {
		return fmt.Errorf("%d bytes, too short", n)
	}
	var fixed [createReplyFixedLen]byte
	if _, err := io.ReadFull(c.r, fixed[:]); err != nil {
		return err
	}
	if resp := int32(binary.BigEndian.Uint32(fixed[10:14])); resp != 0 {
		return fmt.Errorf("VPP refused the client: response %d", resp)
	}
	c.index = binary.BigEndian.Uint32(fixed[14:18])
	count := int(binary.BigEndian.Uint16(fixed[18:20]))
	if createReplyFixedLen+count*tableEntryLen > n {
		return fmt.Errorf("%d entries do not fit in %d bytes", count, n)
	}
	wanted := registered()
	c.ids = make(map[string]uint16, len(wanted))
	var e [tableEntryLen]byte
	for range count {
		if _, err := io.ReadFull(c.r, e[:]); err != nil {
			return err
		}
		name := e[2:]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		id := binary.BigEndian.Uint16(e[:2])
		if bytes.HasPrefix(name, []byte("sockclnt_delete_")) {
			c.delID = id
		}
		if _, ok := wanted[string(name)]; ok {
			c.ids[string(name)] = id
		}
	}
	_, err := c.r.Discard(n - createReplyFixedLen - count*tableEntryLen)
	return err
}

// registered is the set of "name_crc" of every message registered with
// govpp's api package.
func registered() map[string]struct{} {
	set := map[string]struct{}{}
	for _, msgs := range api.GetRegisteredMessages() {
		for _, m := range msgs {
			set[m.GetMessageName()+"_"+m.GetCrcString()] = struct{}{}
		}
	}
	return set
}

// readHeader reads a frame header and returns its message's length.
func (c *socketClient) readHeader() (int, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(h[8:12])
	if n > maxMessage {
		return 0, fmt.Errorf("a VPP API frame of %d bytes: the stream is out of step", n)
	}
	return int(n), nil
}

// readLoop delivers each message to the callback until the connection
// closes. The buffer is reused: the callback (Conn.deliver) copies what it
// keeps.
func (c *socketClient) readLoop() {
	defer c.reader.Done()
	buf := make([]byte, 4096)
	for {
		n, err := c.readHeader()
		if err != nil {
			return
		}
		if n > len(buf) {
			buf = make([]byte, n)
		}
		msg := buf[:n]
		if _, err := io.ReadFull(c.r, msg); err != nil || n < 2 {
			return
		}
		c.cb(binary.BigEndian.Uint16(msg[:2]), msg)
	}
}

// write sends one message in one frame, within d.
func (c *socketClient) write(msg []byte, d time.Duration) error {
	frame := make([]byte, headerLen+len(msg))
	binary.BigEndian.PutUint32(frame[8:12], uint32(len(msg)))
	copy(frame[headerLen:], msg)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// Bounded: a VPP that stopped reading must not hold a verb forever.
	if err := c.conn.SetWriteDeadline(time.Now().Add(d)); err != nil {
		return err
	}
	_, err := c.conn.Write(frame)
	return err
}

// Disconnect unregisters the client without waiting for the reply (VPP
// frees a client whose socket closes in any case) and closes the socket.
func (c *socketClient) Disconnect() error {
	if c.conn == nil {
		return nil
	}
	if c.delID != 0 {
		if msg, err := codec.DefaultCodec.EncodeMsg(&memclnt.SockclntDelete{Index: c.index}, c.delID); err == nil {
			// A VPP that stopped reading must not hold a DEL.
			_ = c.send(deleteContext, msg, 100*time.Millisecond)
		}
	}
	err := c.conn.Close()
	c.reader.Wait()
	return err
}

// GetMsgID returns the ID VPP gave a message this binary registered.
func (c *socketClient) GetMsgID(name, crc string) (uint16, error) {
	if id, ok := c.ids[name+"_"+crc]; ok {
		return id, nil
	}
	return 0, &adapter.UnknownMsgError{MsgName: name, MsgCrc: crc}
}

// SendMsg sends a request with the client's index and the given context
// in its header.
func (c *socketClient) SendMsg(context uint32, data []byte) error {
	return c.send(context, data, c.timeout)
}

// send puts the client's index and context in a request's header and
// writes it within d.
func (c *socketClient) send(context uint32, data []byte, d time.Duration) error {
	if len(data) < 10 {
		return errors.New("a VPP API request shorter than its 10-byte header")
	}
	binary.BigEndian.PutUint32(data[2:6], c.index)
	binary.BigEndian.PutUint32(data[6:10], context)
	return c.write(data, d)
}

// SetMsgCallback sets the function that receives VPP's messages; it is set
// before Connect.
func (c *socketClient) SetMsgCallback(cb adapter.MsgCallback) { c.cb = cb }

// WaitReady is for govpp's reconnecting (asynchronous) connections, which
// Dial does not make: the socket must exist when Connect is called.
func (c *socketClient) WaitReady() error { return nil }
