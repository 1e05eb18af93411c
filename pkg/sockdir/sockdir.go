// Package sockdir manages the host directory an attachment's socket and
// config data live in: its location under a directory the node policy
// allows, the unix socket address length limit, permissions a non-root pod
// app can use, and removal of what the plugin created.
//
// The directory is shared with pods, which may plant symlinks in it. Every
// file operation therefore goes through an os.Root opened on the allowed base
// directory, so nothing the plugin writes or removes can land outside it.
package sockdir

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/userspace-cni/userspace/pkg/policy"
)

// MaxSocketPath is the longest path a unix socket address can hold: sun_path
// is 108 bytes including the terminating NUL.
const MaxSocketPath = 107

// Directory and socket modes. Without a group, anyone may create and connect
// sockets in the per-pod directory (the pod's uid is unknown to the plugin);
// the sticky bit stops them from removing the plugin's files. With
// vhost.group, only that group gets in.
const (
	modeDirOpen    = 0o777 | fs.ModeSticky
	modeDirGroup   = 0o770 | fs.ModeSetgid
	modeSockOpen   = 0o666
	modeSockGroup  = 0o660
	modeBaseDir    = 0o755
	modeConfigFile = 0o644
)

// ID12 is the short container id the original plugin used in names. Unlike
// the original it does not panic on ids shorter than 12 characters.
func ID12(containerID string) string {
	if len(containerID) > 12 {
		return containerID[:12]
	}
	return containerID
}

// Layout is where one attachment's files live on the host. It is saved in
// the attachment record, so DEL removes exactly what ADD created.
type Layout struct {
	// Base is the directory the node policy allows; all file operations are
	// confined beneath it.
	Base string `json:"base"`
	// Dir is the socket directory, Base or beneath it.
	Dir string `json:"dir"`
	// OwnDir says Dir is the plugin's per-pod directory, removed on DEL once
	// empty. A pod's own volume is never removed.
	OwnDir bool `json:"ownDir"`
	// SocketName is the socket's file name in Dir.
	SocketName string `json:"socketName"`
	// ShortLink, when set, is a symlink to Dir used in socket addresses
	// because Dir/SocketName is longer than MaxSocketPath.
	ShortLink string `json:"shortLink,omitempty"`
	// Socket identifies the socket file the plugin or the switch created,
	// once it exists: removal unlinks that file and no other a pod may have
	// put at the same name.
	Socket *FileID `json:"socket,omitempty"`
}

// FileID identifies a file independently of its name.
type FileID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

func fileID(fi fs.FileInfo) *FileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return &FileID{Dev: st.Dev, Ino: st.Ino}
}

// ErrReplaced reports that the socket directory, or a directory above it,
// is no longer a directory: a pod that shares the base replaced it (with a
// symlink, say). Nothing is done through it; for removal it counts as gone.
var ErrReplaced = errors.New("replaced by something that is not a directory")

// Plan checks dir against the node policy and works out a socket address
// short enough for sun_path.
func Plan(pol *policy.Policy, dir string, ownDir bool, socketName string) (*Layout, error) {
	base, _, err := pol.Match(policy.SharedDir, dir)
	if err != nil {
		return nil, fmt.Errorf("socket directory %q: %w", dir, err)
	}
	l := &Layout{Base: base, Dir: filepath.Clean(dir), OwnDir: ownDir, SocketName: socketName}
	if len(l.SocketPath()) > MaxSocketPath {
		sum := sha256.Sum256([]byte(l.Dir))
		l.ShortLink = filepath.Join(pol.ShortSocketDir, hex.EncodeToString(sum[:6]))
		if n := len(l.ConnectPath()); n > MaxSocketPath {
			return nil, fmt.Errorf("socket path %q is %d bytes and even its short form %q exceeds the %d-byte unix socket limit",
				l.SocketPath(), len(l.SocketPath()), l.ConnectPath(), MaxSocketPath)
		}
	}
	return l, nil
}

// SocketPath is the socket's real path on the host.
func (l *Layout) SocketPath() string { return filepath.Join(l.Dir, l.SocketName) }

// ConnectPath is the path to hand to a switch or any host process: the real
// path, or the same file through the short link when the real one is too long.
func (l *Layout) ConnectPath() string {
	if l.ShortLink != "" {
		return filepath.Join(l.ShortLink, l.SocketName)
	}
	return l.SocketPath()
}

// rel is Dir relative to Base.
func (l *Layout) rel() (string, error) {
	r, err := filepath.Rel(l.Base, l.Dir)
	if err != nil || r == ".." || len(r) > 2 && r[:3] == "../" {
		return "", fmt.Errorf("socket directory %q is not beneath %q", l.Dir, l.Base)
	}
	return r, nil
}

// openDir opens Dir through a root on Base, one directory at a time, and
// refuses (ErrReplaced) a path where any directory beneath Base is a symlink
// or anything else but a directory. os.Root alone would follow a symlink
// that stays beneath Base, such as one a pod planted to point at another
// pod's directory.
func (l *Layout) openDir() (*os.Root, error) {
	rel, err := l.rel()
	if err != nil {
		return nil, err
	}
	cur, err := os.OpenRoot(l.Base)
	if err != nil {
		return nil, err
	}
	if rel == "." {
		return cur, nil
	}
	for _, name := range strings.Split(rel, string(filepath.Separator)) {
		next, err := openSubdir(cur, name)
		_ = cur.Close()
		if err != nil {
			if errors.Is(err, ErrReplaced) {
				return nil, fmt.Errorf("socket directory %s: %w", l.Dir, err)
			}
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// openSubdir opens the directory name in parent, which must be a real
// directory when looked at and when opened.
func openSubdir(parent *os.Root, name string) (*os.Root, error) {
	lfi, err := parent.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !lfi.IsDir() {
		return nil, fmt.Errorf("%s is a %s: %w", name, typeName(lfi.Mode()), ErrReplaced)
	}
	sub, err := parent.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	fi, err := sub.Stat(".")
	if err != nil || !os.SameFile(lfi, fi) {
		_ = sub.Close()
		return nil, fmt.Errorf("%s changed while being opened: %w", name, ErrReplaced)
	}
	return sub, nil
}

func typeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m.IsRegular():
		return "regular file"
	}
	return m.Type().String()
}

// Prepare creates the socket directory with permissions for the pod app
// (group, if set, is a group name or gid that gets exclusive access) and the
// short link if one is needed.
func (l *Layout) Prepare(group string) error {
	if err := os.MkdirAll(l.Base, modeBaseDir); err != nil {
		return fmt.Errorf("creating %s: %w", l.Base, err)
	}
	rel, err := l.rel()
	if err != nil {
		return err
	}
	base, err := os.OpenRoot(l.Base)
	if err != nil {
		return fmt.Errorf("opening %s: %w", l.Base, err)
	}
	defer base.Close()
	// Directories between the base and the socket directory must be
	// traversable by the pod app, which may not run as root.
	if parent := filepath.Dir(rel); parent != "." {
		if err := base.MkdirAll(parent, modeBaseDir); err != nil {
			return fmt.Errorf("creating socket directory %s: %w", l.Dir, err)
		}
	}
	if err := base.MkdirAll(rel, 0o700); err != nil {
		return fmt.Errorf("creating socket directory %s: %w", l.Dir, err)
	}
	if l.OwnDir && rel != "." {
		// Only the per-pod directory gets the pod's permissions; the base and
		// a pod's own volume keep theirs.
		if err := setPerms(base, rel, group, modeDirOpen, modeDirGroup); err != nil {
			return fmt.Errorf("setting permissions of %s: %w", l.Dir, err)
		}
	}
	if l.ShortLink != "" {
		if err := l.makeShortLink(); err != nil {
			return err
		}
	}
	return nil
}

// setPerms sets mode and group through an open descriptor, so a path swapped
// for a symlink meanwhile cannot redirect the change.
// The directory itself must not be a symlink: os.Root follows symlinks that
// stay beneath it, so a planted link to the base or to another pod's
// directory would otherwise get this pod's permissions.
func setPerms(root *os.Root, name, group string, open, grouped fs.FileMode) error {
	lfi, err := root.Lstat(name)
	if err != nil {
		return err
	}
	if !lfi.IsDir() {
		return fmt.Errorf("%s is not a directory (%s)", name, lfi.Mode().Type())
	}
	f, err := root.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(lfi, fi) {
		return fmt.Errorf("%s was replaced while being opened", name)
	}
	if group == "" {
		return f.Chmod(open)
	}
	gid, err := LookupGID(group)
	if err != nil {
		return err
	}
	if err := f.Chown(-1, gid); err != nil {
		return err
	}
	return f.Chmod(grouped)
}

// LookupGID resolves a group name or numeric gid on the node.
func LookupGID(group string) (int, error) {
	if gid, err := strconv.Atoi(group); err == nil {
		return gid, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", group, err)
	}
	return strconv.Atoi(g.Gid)
}

func (l *Layout) makeShortLink() error {
	if err := os.MkdirAll(filepath.Dir(l.ShortLink), modeBaseDir); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(l.ShortLink), err)
	}
	if target, err := os.Readlink(l.ShortLink); err == nil {
		if target == l.Dir {
			return nil
		}
		if err := os.Remove(l.ShortLink); err != nil {
			return fmt.Errorf("replacing stale link %s: %w", l.ShortLink, err)
		}
	}
	if err := os.Symlink(l.Dir, l.ShortLink); err != nil {
		return fmt.Errorf("creating short socket link %s: %w", l.ShortLink, err)
	}
	return nil
}

// ErrSocketInUse reports a live socket at the attachment's path.
var ErrSocketInUse = errors.New("a process is listening on it")

// RemoveStaleSocket removes a leftover socket at the socket path, which
// would stop a server from binding. A socket something still listens on is
// refused rather than stolen, and a non-socket file is never touched.
func (l *Layout) RemoveStaleSocket() error {
	root, err := l.openDir()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	fi, err := root.Lstat(l.SocketName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket (%s)", l.SocketPath(), fi.Mode().Type())
	}
	// vhost-user listens on stream sockets, memif on seqpacket ones: a
	// stream connect to a live memif listener fails, so try both.
	for _, network := range []string{"unix", "unixpacket"} {
		if c, err := net.DialTimeout(network, l.ConnectPath(), 100*time.Millisecond); err == nil {
			_ = c.Close()
			return fmt.Errorf("socket %s: %w", l.SocketPath(), ErrSocketInUse)
		}
	}
	if err := root.Remove(l.SocketName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale socket %s: %w", l.SocketPath(), err)
	}
	return nil
}

// SetSocketPerms gives the pod app access to a socket the switch created.
func (l *Layout) SetSocketPerms(group string) error {
	root, err := l.openDir()
	if err != nil {
		return err
	}
	defer root.Close()
	// A socket cannot be opened, so this goes by name; Root keeps it beneath
	// the directory.
	if group == "" {
		return root.Chmod(l.SocketName, modeSockOpen)
	}
	gid, err := LookupGID(group)
	if err != nil {
		return err
	}
	if err := root.Lchown(l.SocketName, -1, gid); err != nil {
		return err
	}
	return root.Chmod(l.SocketName, modeSockGroup)
}

// WriteFileAtomic writes name in the socket directory so that readers see
// the old content or the new, never a partial file.
func (l *Layout) WriteFileAtomic(name string, data []byte) error {
	root, err := l.openDir()
	if err != nil {
		return err
	}
	defer root.Close()
	tmp := "." + name + ".tmp"
	_ = root.Remove(tmp)
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, modeConfigFile)
	if err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(l.Dir, name), err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(modeConfigFile)
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = root.Rename(tmp, name)
	}
	if werr != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("writing %s: %w", filepath.Join(l.Dir, name), werr)
	}
	return nil
}

// RemoveFile removes a file the plugin wrote in the socket directory;
// a file already gone is not an error. Only a regular file is removed: a
// directory or anything else a pod put at the name is not the plugin's.
func (l *Layout) RemoveFile(name string) error {
	root, err := l.openDir()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	if fi, err := root.Lstat(name); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", filepath.Join(l.Dir, name), err)
	}
	return nil
}

// Cleanup removes the socket, the short link and, if the plugin owns it and
// nothing else is left in it, the directory. Missing pieces are not errors,
// so DEL can repeat it.
func (l *Layout) Cleanup() error {
	return errors.Join(l.RemoveSocket(), l.RemoveShortLink(), l.RemoveDirIfEmpty())
}

// RemoveSocket removes the attachment's socket (see removeSocket).
func (l *Layout) RemoveSocket() error { return l.removeSocket() }

// RemoveShortLink removes the short link to the directory, if it still
// points there. Every attachment in the directory uses it: remove it with
// the last one.
func (l *Layout) RemoveShortLink() error {
	if l.ShortLink == "" {
		return nil
	}
	if target, err := os.Readlink(l.ShortLink); err == nil && target == l.Dir {
		if err := os.Remove(l.ShortLink); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// RemoveDirIfEmpty removes the plugin's per-pod directory once empty; a
// directory the plugin does not own (a pod's volume, a shared base) stays.
func (l *Layout) RemoveDirIfEmpty() error {
	if !l.OwnDir {
		return nil
	}
	return l.removeDirIfEmpty()
}

// RememberSocket records the identity of the socket now at the socket path
// (created by the switch, or linked by the plugin), so that removal later
// takes that file and nothing a pod puts in its place. No socket there is
// not an error: in client mode the pod's app creates it later.
func (l *Layout) RememberSocket() error {
	root, err := l.openDir()
	if err != nil {
		return err
	}
	defer root.Close()
	fi, err := root.Lstat(l.SocketName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket != 0 {
		l.Socket = fileID(fi)
	}
	return nil
}

// removeSocket removes the socket file only if it is a socket (DEL must
// never delete a pod's regular files that happen to share the name) and,
// when the layout remembers which socket it created, only that one.
func (l *Layout) removeSocket() error {
	if l.SocketName == "" {
		return nil
	}
	root, err := l.openDir()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	fi, err := root.Lstat(l.SocketName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return nil
	}
	if l.Socket != nil {
		if id := fileID(fi); id == nil || *id != *l.Socket {
			return nil // not the socket this attachment made
		}
	}
	if err := root.Remove(l.SocketName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing socket %s: %w", l.SocketPath(), err)
	}
	return nil
}

func (l *Layout) removeDirIfEmpty() error {
	rel, err := l.rel()
	if err != nil || rel == "." {
		return err
	}
	base, err := os.OpenRoot(l.Base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer base.Close()
	parent, err := base.Open(filepath.Dir(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing socket directory %s: %w", l.Dir, err)
	}
	defer parent.Close()
	// AT_REMOVEDIR removes only an empty directory, never a file or a
	// symlink a pod put in its place (root.Remove would remove either).
	err = unix.Unlinkat(int(parent.Fd()), filepath.Base(rel), unix.AT_REMOVEDIR)
	if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTEMPTY) ||
		errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	return fmt.Errorf("removing socket directory %s: %w", l.Dir, err)
}

// Exists reports whether name exists in the socket directory.
func (l *Layout) Exists(name string) bool {
	root, err := l.openDir()
	if err != nil {
		return false
	}
	defer root.Close()
	_, err = root.Lstat(name)
	return err == nil
}

// OpenDirFD opens the socket directory for operations the os package has no
// confined form of (linking a file from outside, bind mounts). The caller
// closes the returned file.
func (l *Layout) OpenDirFD() (*os.File, error) {
	root, err := l.openDir()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.Open(".")
}
