package vppstub

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"

	"go.fd.io/govpp/api"
	"golang.org/x/sys/unix"
)

// Memif control protocol (version 2.0): fixed 128-byte little-endian
// messages on a SOCK_SEQPACKET socket, file descriptors as SCM_RIGHTS.
const (
	memifMsgSize       = 128
	memifMsgAck        = 1
	memifMsgHello      = 2
	memifMsgInit       = 3
	memifMsgDisconnect = 8
	memifVersion       = 2 << 8
	memifMaxLog2Ring   = 14
	memifAppName       = "VPP 25.10-release"
)

// memifHello is the master's greeting. It offers a single ring pair (the
// maxima are ring indices), so every peer uses queue 0 only.
func memifHello() []byte {
	b := make([]byte, memifMsgSize)
	binary.LittleEndian.PutUint16(b[0:], memifMsgHello)
	copy(b[2:34], memifAppName)
	binary.LittleEndian.PutUint16(b[34:], memifVersion) // min version
	binary.LittleEndian.PutUint16(b[36:], memifVersion) // max version
	binary.LittleEndian.PutUint16(b[38:], 255)          // max region index
	binary.LittleEndian.PutUint16(b[40:], 0)            // max m2s ring index
	binary.LittleEndian.PutUint16(b[42:], 0)            // max s2m ring index
	b[44] = memifMaxLog2Ring
	return b
}

type memifInit struct {
	version uint16
	id      uint32
	mode    uint8
	secret  [24]byte
	name    string
}

func parseMemifInit(b []byte) (memifInit, error) {
	if len(b) < 65 || binary.LittleEndian.Uint16(b) != memifMsgInit {
		return memifInit{}, fmt.Errorf("expected an init message, got %d bytes of type %d", len(b), msgType(b))
	}
	in := memifInit{version: binary.LittleEndian.Uint16(b[2:]), id: binary.LittleEndian.Uint32(b[4:]), mode: b[8]}
	copy(in.secret[:], b[9:33])
	in.name = cString(b[33:65])
	return in, nil
}

func (in memifInit) secretString() string { return cString(in.secret[:]) }

func memifDisconnect(reason string) []byte {
	b := make([]byte, memifMsgSize)
	binary.LittleEndian.PutUint16(b[0:], memifMsgDisconnect)
	copy(b[6:6+95], reason)
	return b
}

func disconnectReason(b []byte) string {
	if len(b) < 6 {
		return ""
	}
	return cString(b[6:min(len(b), 102)])
}

func msgType(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// readMsg reads one control message and the descriptors passed with it.
func readMsg(c *net.UnixConn, buf, oob []byte) (int, []int, error) {
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return 0, nil, err
	}
	if n == 0 {
		return 0, nil, errors.New("connection closed")
	}
	var fds []int
	cmsgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return n, nil, fmt.Errorf("control message: %w", err)
	}
	for i := range cmsgs {
		if cmsgs[i].Header.Level == syscall.SOL_SOCKET && cmsgs[i].Header.Type == syscall.SCM_RIGHTS {
			if r, err := syscall.ParseUnixRights(&cmsgs[i]); err == nil {
				fds = append(fds, r...)
			}
		}
	}
	return n, fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		_ = syscall.Close(fd)
	}
}

// listenMemif opens a master's listener like VPP's memif_create_if: a
// leftover socket file is replaced, any other file is VALUE_EXIST (-81), and
// a bind or listen failure (e.g. a missing directory) is SYSCALL_ERROR_4
// (-14). The file is group-writable and outlives the listener.
func listenMemif(filename string) (*net.UnixListener, int32, error) {
	if name, netns, ok := parseAbstract(filename); ok {
		ln, err := listenAbstract(name, netns)
		if err != nil {
			return nil, rv(api.SYSCALL_ERROR_4), err
		}
		return ln, 0, nil
	}
	if fi, err := os.Lstat(filename); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, rv(api.VALUE_EXIST), fmt.Errorf("%s exists and is not a socket", filename)
		}
		_ = os.Remove(filename)
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: filename, Net: "unixpacket"})
	if err != nil {
		return nil, rv(api.SYSCALL_ERROR_4), err
	}
	ln.SetUnlinkOnClose(false)
	if fi, err := os.Stat(filename); err == nil {
		_ = os.Chmod(filename, fi.Mode().Perm()|0o020)
	}
	return ln, 0, nil
}

// parseAbstract splits VPP's "abstract:<name>[,netns_name=<path>]".
func parseAbstract(filename string) (name, netns string, ok bool) {
	rest, ok := strings.CutPrefix(filename, "abstract:")
	if !ok {
		return "", "", false
	}
	name, netns, _ = strings.Cut(rest, ",netns_name=")
	return name, netns, true
}

// listenAbstract binds an abstract socket, inside a network namespace when
// netnsPath is set (VPP's "abstract:<name>,netns_name=<path>").
func listenAbstract(name, netnsPath string) (*net.UnixListener, error) {
	addr := &net.UnixAddr{Name: "@" + name, Net: "unixpacket"}
	if netnsPath == "" {
		return net.ListenUnix("unixpacket", addr)
	}
	var ln *net.UnixListener
	err := inNetns(netnsPath, func() (err error) {
		ln, err = net.ListenUnix("unixpacket", addr)
		return err
	})
	return ln, err
}

// inNetns runs f on an OS thread inside the network namespace at netnsPath.
// A thread whose namespace cannot be restored stays locked, so the runtime
// discards it when its goroutine ends.
func inNetns(netnsPath string, f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := runInNetns(netnsPath, f)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}

func runInNetns(netnsPath string, f func() error) (bool, error) {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return true, fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(netnsPath)
	if err != nil {
		return true, fmt.Errorf("netns: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("entering netns %s: %w", netnsPath, err)
	}
	err = f()
	restored := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil
	return restored, err
}
