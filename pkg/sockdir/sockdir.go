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
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
)

// MaxSocketPath is the longest path a unix socket address can hold: sun_path
// is 108 bytes including the terminating NUL.
const MaxSocketPath = 107

// Directory and socket modes: the narrowest that let the pod's app use its
// socket. The app runs as a uid the plugin does not know, so without
// vhost.group its directory is open to every uid: writable (sticky, so only
// a file's owner removes it) when the app creates the socket (it is the
// vhost-user server or the memif master), read-only when the switch does.
// With vhost.group only that group gets in, and the setgid bit gives an
// app's socket the group too.
const (
	modeDirPodCreates         = 0o777 | fs.ModeSticky
	modeDirSwitchCreates      = 0o755
	modeDirGroupPodCreates    = 0o770 | fs.ModeSetgid | fs.ModeSticky
	modeDirGroupSwitchCreates = 0o750 | fs.ModeSetgid
	modeSockOpen              = 0o666
	modeSockGroup             = 0o660
	// A directory that holds several pods' sockets (VPP's shared one) is
	// reachable by every uid but listable by none: sockets there are named
	// by container ids other pods cannot guess. It is writable (sticky) only
	// once an attachment's app must create its socket in it.
	modeSharedDir           = 0o711
	modeSharedDirPodCreates = 0o733 | fs.ModeSticky
	// Directories the plugin creates above socket directories: pods that
	// mount them reach a directory whose name they know, but cannot list
	// them to find other pods'.
	modeBaseDir = 0o711
	// Directories it creates above the policy's base directory, which no
	// pod mounts, get the usual mode.
	modeAboveBase  = 0o755
	modeConfigFile = 0o644
	// modeListable is what Unlisted directories lose.
	modeListable = 0o044
)

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
	// PodCreates says the pod's app creates the socket (it is the vhost-user
	// server or the memif master), so it must be able to create files in
	// Dir; otherwise the switch puts the socket there.
	PodCreates bool `json:"podCreates,omitempty"`
	// Shared says Dir holds the sockets of several pods (the notes' VPP
	// layout): it is never removed, and never listable by others.
	Shared bool `json:"shared,omitempty"`
	// Unlisted, when set, is a directory other pods mount to reach their
	// own (Base or beneath it, above Dir): Prepare takes away its read bits
	// for group and others, so a pod cannot list it to find other pods'
	// directories. Only for the plugin's own layouts, whose directories
	// nothing else needs to list.
	Unlisted string `json:"unlisted,omitempty"`
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
// short link if one is needed. The group is resolved before anything is
// created, and a failure removes the directories this call created (while
// they are still empty), so a failed Prepare leaves nothing behind.
func (l *Layout) Prepare(group string) (err error) {
	gid := -1
	if group != "" {
		if gid, err = LookupGID(group); err != nil {
			return fmt.Errorf("vhost.group %q: %w", group, err)
		}
	}
	rel, err := l.rel()
	if err != nil {
		return err
	}
	var made madeDirs
	defer func() {
		if err != nil {
			made.undo()
		}
		if made.base != nil {
			made.base.Close()
		}
	}()
	if err := made.mkdirAll(l.Base, modeBaseDir, modeAboveBase); err != nil {
		return fmt.Errorf("creating %s: %w", l.Base, err)
	}
	base, err := os.OpenRoot(l.Base)
	if err != nil {
		return fmt.Errorf("opening %s: %w", l.Base, err)
	}
	made.base = base
	// Directories between the base and the socket directory must be
	// traversable by the pod app, which may not run as root.
	if parent := filepath.Dir(rel); parent != "." {
		if err := made.mkdirAllIn(parent, modeBaseDir); err != nil {
			return fmt.Errorf("creating socket directory %s: %w", l.Dir, err)
		}
	}
	if err := made.mkdirAllIn(rel, 0o700); err != nil {
		return fmt.Errorf("creating socket directory %s: %w", l.Dir, err)
	}
	created := slices.Contains(made.rel, rel)
	switch {
	case rel == ".":
		// The base itself (an empty container id): it keeps its mode.
	case l.OwnDir:
		// Only the per-pod directory gets the pod's permissions; a pod's
		// own volume keeps its own.
		if err := setPerms(base, rel, func(old fs.FileMode) fs.FileMode { return l.ownDirMode(old, created, gid >= 0) }, gid); err != nil {
			return fmt.Errorf("setting permissions of %s: %w", l.Dir, err)
		}
	case l.Shared:
		if err := setPerms(base, rel, l.sharedDirMode, -1); err != nil {
			return fmt.Errorf("setting permissions of %s: %w", l.Dir, err)
		}
	}
	if l.Unlisted != "" {
		if err := l.unlist(base); err != nil {
			return err
		}
	}
	if l.ShortLink != "" {
		if err := made.mkdirAll(filepath.Dir(l.ShortLink), modeBaseDir, modeAboveBase); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(l.ShortLink), err)
		}
		if err := l.makeShortLink(); err != nil {
			return err
		}
	}
	return nil
}

// ownDirMode is the per-pod directory's mode: exactly what this attachment
// needs when Prepare created it; otherwise (another attachment of the pod
// prepared it) what it already allows as well, so one attachment's
// narrower needs never lock out another's app.
func (l *Layout) ownDirMode(old fs.FileMode, created, grouped bool) fs.FileMode {
	var m fs.FileMode
	switch {
	case grouped && l.PodCreates:
		m = modeDirGroupPodCreates
	case grouped:
		m = modeDirGroupSwitchCreates
	case l.PodCreates:
		m = modeDirPodCreates
	default:
		m = modeDirSwitchCreates
	}
	if !created {
		m |= old
	}
	return m
}

// sharedDirMode is a shared socket directory's mode: traversable and never
// listable, and writable (sticky) once any attachment's app creates its
// socket there. Bits granted for one attachment are kept for the others.
func (l *Layout) sharedDirMode(old fs.FileMode) fs.FileMode {
	m := old&^modeListable | modeSharedDir
	if l.PodCreates {
		m |= modeSharedDirPodCreates
	}
	if m&0o022 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// unlist takes the read bits for group and others from Unlisted.
func (l *Layout) unlist(base *os.Root) error {
	rel, err := filepath.Rel(l.Base, l.Unlisted)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s is not beneath %s", l.Unlisted, l.Base)
	}
	if err := setPerms(base, rel, func(old fs.FileMode) fs.FileMode { return old &^ modeListable }, -1); err != nil {
		return fmt.Errorf("setting permissions of %s: %w", l.Unlisted, err)
	}
	return nil
}

// madeDirs records the directories one Prepare created, so that a failure
// later in it removes exactly those.
type madeDirs struct {
	abs  []string // absolute: the base, directories above it, the short link's
	base *os.Root // the base, once open
	rel  []string // beneath the base
}

// mkdirAll creates dir (with mode) and its missing parents (parentMode),
// recording each. These are the administrator's directories (policy
// entries and their parents), which no pod can change.
func (m *madeDirs) mkdirAll(dir string, mode, parentMode fs.FileMode) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := m.mkdirAll(parent, parentMode, parentMode); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, mode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // created meanwhile by another attachment
		}
		return err
	}
	m.abs = append(m.abs, dir)
	// Mkdir is subject to the umask.
	return os.Chmod(dir, mode)
}

// mkdirAllIn creates rel beneath the base and its missing parents,
// recording each.
func (m *madeDirs) mkdirAllIn(rel string, mode fs.FileMode) error {
	parts := strings.Split(rel, "/")
	for i := range parts {
		name := strings.Join(parts[:i+1], "/")
		err := m.base.Mkdir(name, mode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		m.rel = append(m.rel, name)
		if err := m.base.Chmod(name, mode); err != nil {
			return err
		}
	}
	return nil
}

// undo removes the recorded directories, newest first, each only if it is
// still an empty directory: a concurrent attachment may be using one.
func (m *madeDirs) undo() {
	for i := len(m.rel) - 1; i >= 0; i-- {
		parent, err := m.base.Open(filepath.Dir(m.rel[i]))
		if err != nil {
			continue
		}
		_ = unix.Unlinkat(int(parent.Fd()), filepath.Base(m.rel[i]), unix.AT_REMOVEDIR)
		parent.Close()
	}
	for i := len(m.abs) - 1; i >= 0; i-- {
		_ = unix.Rmdir(m.abs[i])
	}
}

// setPerms sets a directory's mode (mode computes it from the current one)
// and group (gid, or -1 to keep it) through an open descriptor, so a path
// swapped for a symlink meanwhile cannot redirect the change.
// The directory itself must not be a symlink: os.Root follows symlinks that
// stay beneath it, so a planted link to the base or to another pod's
// directory would otherwise get this pod's permissions.
func setPerms(root *os.Root, name string, mode func(old fs.FileMode) fs.FileMode, gid int) error {
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
	if gid >= 0 {
		if err := f.Chown(-1, gid); err != nil {
			return err
		}
	}
	old := fi.Mode() & (fs.ModePerm | fs.ModeSticky | fs.ModeSetgid)
	if m := mode(old); m != old || gid >= 0 {
		// chown clears setgid: set the mode after it.
		return f.Chmod(m)
	}
	return nil
}

// LookupGID resolves a group name or numeric gid on the node. Its errors
// do not repeat the group: callers name it with the field it came from.
func LookupGID(group string) (int, error) {
	if gid, numeric, err := netconf.ParseGID(group); numeric || err != nil {
		return gid, err
	}
	g, err := user.LookupGroup(group)
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		return 0, errors.New("no such group on this node")
	}
	if err != nil {
		return 0, fmt.Errorf("looking the group up: %w", err)
	}
	gid, numeric, err := netconf.ParseGID(g.Gid)
	if !numeric || err != nil {
		return 0, fmt.Errorf("the node's group database gives it gid %q, which cannot be set", g.Gid)
	}
	return gid, nil
}

func (l *Layout) makeShortLink() error {
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
	root, fi, err := l.lstatSocket()
	if err != nil || fi == nil {
		return err
	}
	defer root.Close()
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
		return fmt.Errorf("vhost.group %q: %w", group, err)
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
	root, fi, err := l.lstatSocket()
	if err != nil || fi == nil {
		return err
	}
	defer root.Close()
	if fi.Mode()&fs.ModeSocket != 0 {
		l.Socket = fileID(fi)
	}
	return nil
}

// lstatSocket looks at what is at the socket name, through the confined
// directory it returns open (the caller closes it); fi is nil, with no
// error, when the directory or the name does not exist.
func (l *Layout) lstatSocket() (*os.Root, fs.FileInfo, error) {
	root, err := l.openDir()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := root.Lstat(l.SocketName)
	if err != nil {
		_ = root.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	return root, fi, nil
}

// removeSocket removes the socket file only if it is a socket (DEL must
// never delete a pod's regular files that happen to share the name) and,
// when the layout remembers which socket it created, only that one.
func (l *Layout) removeSocket() error {
	if l.SocketName == "" {
		return nil
	}
	root, fi, err := l.lstatSocket()
	if err != nil || fi == nil {
		return err
	}
	defer root.Close()
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

// RemoveDead removes the unix socket at path if nothing listens on it any
// more (connecting is refused), and reports whether it did: a file that
// belongs to a live listener is never removed. A bare connection sends
// nothing: a live vhost-user switch or node agent only sees it open and
// close.
func RemoveDead(path string) (bool, error) {
	c, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		_ = c.Close()
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil // gone meanwhile: nothing to remove
	case !errors.Is(err, syscall.ECONNREFUSED):
		return false, fmt.Errorf("probing %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("removing the dead socket %s: %w", path, err)
	}
	return true, nil
}
