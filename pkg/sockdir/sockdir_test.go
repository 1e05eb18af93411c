package sockdir

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/policy"
)

// env is a test node: an allowed base directory, a short socket directory
// and a policy naming them.
type env struct {
	base, short string
	pol         *policy.Policy
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base := filepath.Join(t.TempDir(), "base")
	if err := os.Mkdir(base, 0o711); err != nil {
		t.Fatal(err)
	}
	// Mkdir is subject to the umask.
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "s")
	return &env{base: base, short: short, pol: &policy.Policy{SharedDirs: []string{base}, ShortSocketDir: short}}
}

func (e *env) plan(t *testing.T, rel string, own bool, name string) *Layout {
	t.Helper()
	l, err := Plan(e.pol, filepath.Join(e.base, rel), own, name)
	if err != nil {
		t.Fatalf("Plan(%s): %v", rel, err)
	}
	return l
}

// perm returns the permission, sticky and setgid bits of path (not
// following a final symlink).
func perm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode() & (fs.ModePerm | fs.ModeSticky | fs.ModeSetgid)
}

func gidOf(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Gid)
}

// deadSocket leaves a unix socket at path that nothing listens on.
func deadSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&fs.ModeSocket == 0 {
		t.Fatalf("dead socket %s not left behind: %v", path, err)
	}
}

// liveSocket listens at path until the test ends.
func liveSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// snapshot records every entry under dir with its mode, size and
// modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		out[p] = fi.Mode().String() + " " + strconv.FormatInt(fi.Size(), 10) + " " +
			fi.ModTime().String() + " " + strconv.Itoa(int(st.Uid)) + ":" + strconv.Itoa(int(st.Gid))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkUntouched(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := snapshot(t, dir)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("outside the base, %s changed: %q -> %q", p, v, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("outside the base, %s was created", p)
		}
	}
}

func TestPlan(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("d", 100)
	tests := []struct {
		name      string
		dir       string
		sock      string
		wantShort bool
		wantErr   string
	}{
		{"short path", filepath.Join(e.base, "pod"), "0123456789ab-net1", false, ""},
		{"base itself", e.base, "s", false, ""},
		{"unclean dir", e.base + "//pod/./", "s", false, ""},
		{"long path uses short link", filepath.Join(e.base, long), "0123456789ab-net1", true, ""},
		{"too long even when short", filepath.Join(e.base, long), strings.Repeat("n", 100), true, "exceeds"},
		{"outside the policy", filepath.Join(filepath.Dir(e.base), "other"), "s", false, "not under"},
		{"sibling with common prefix", e.base + "x/pod", "s", false, "not under"},
		{"dotdot", e.base + "/pod/../../x", "s", false, ".."},
		{"relative", "base/pod", "s", false, "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Plan(e.pol, tt.dir, true, tt.sock)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Plan = %+v, %v; want error mentioning %q", l, err, tt.wantErr)
				}
				if l != nil {
					t.Errorf("Plan returned a layout with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if l.Base != e.base || l.Dir != filepath.Clean(tt.dir) || !l.OwnDir || l.SocketName != tt.sock {
				t.Errorf("layout = %+v", l)
			}
			if l.SocketPath() != filepath.Join(filepath.Clean(tt.dir), tt.sock) {
				t.Errorf("SocketPath = %q", l.SocketPath())
			}
			if len(l.ConnectPath()) > MaxSocketPath {
				t.Errorf("ConnectPath %q is %d bytes", l.ConnectPath(), len(l.ConnectPath()))
			}
			if !tt.wantShort {
				if l.ShortLink != "" || l.ConnectPath() != l.SocketPath() {
					t.Errorf("short link %q used for a short path", l.ShortLink)
				}
				return
			}
			if filepath.Dir(l.ShortLink) != e.short {
				t.Errorf("ShortLink %q not in %q", l.ShortLink, e.short)
			}
			if l.ConnectPath() != filepath.Join(l.ShortLink, tt.sock) {
				t.Errorf("ConnectPath = %q", l.ConnectPath())
			}
			// The short link is a function of the directory.
			l2, _ := Plan(e.pol, tt.dir, true, tt.sock)
			l3, _ := Plan(e.pol, filepath.Join(e.base, strings.Repeat("e", 100)), true, tt.sock)
			if l2.ShortLink != l.ShortLink || l3.ShortLink == l.ShortLink {
				t.Errorf("short links: %q %q %q", l.ShortLink, l2.ShortLink, l3.ShortLink)
			}
		})
	}
	if MaxSocketPath != 107 {
		t.Errorf("MaxSocketPath = %d", MaxSocketPath)
	}
}

// TestPlanApplicationNotesLength checks the application notes' layout: a
// 64-hex container id directory and "<id12>-net1" is 105 bytes and fits.
func TestPlanApplicationNotesLength(t *testing.T) {
	pol := policy.Default()
	id := strings.Repeat("a", 64)
	l, err := Plan(pol, "/var/lib/cni/vhostuser/"+id, true, configdata.ShortID(id)+"-net1")
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if len(l.SocketPath()) != 105 || l.ShortLink != "" {
		t.Errorf("socket path %q (%d bytes), short link %q", l.SocketPath(), len(l.SocketPath()), l.ShortLink)
	}
	l, err = Plan(pol, "/var/lib/cni/vhostuser/"+id, true, configdata.ShortID(id)+"-net1234")
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if l.ShortLink == "" || !strings.HasPrefix(l.ConnectPath(), "/run/userspace-cni/") || len(l.ConnectPath()) > MaxSocketPath {
		t.Errorf("long path: short link %q connect %q", l.ShortLink, l.ConnectPath())
	}
}

// TestPrepareModes: the per-pod directory gets the narrowest mode its app
// can use: writable (sticky) only when the app creates the socket, and with
// a group, the group's alone (setgid, so the app's socket is the group's).
func TestPrepareModes(t *testing.T) {
	daemon, err := user.LookupGroup("daemon")
	if err != nil {
		t.Fatalf("looking up group daemon: %v", err)
	}
	daemonGID, _ := strconv.Atoi(daemon.Gid)
	for _, tt := range []struct {
		podCreates bool
		group      string
		gid        int // -1: unchanged
		want       fs.FileMode
	}{
		{true, "", -1, 0o777 | fs.ModeSticky},
		{false, "", -1, 0o755},
		{true, "12345", 12345, 0o770 | fs.ModeSetgid | fs.ModeSticky},
		{false, "12345", 12345, 0o750 | fs.ModeSetgid},
		{true, "daemon", daemonGID, 0o770 | fs.ModeSetgid | fs.ModeSticky},
		{false, "daemon", daemonGID, 0o750 | fs.ModeSetgid},
	} {
		t.Run(fmt.Sprintf("podCreates=%v,group=%s", tt.podCreates, tt.group), func(t *testing.T) {
			e := newEnv(t)
			baseGID := gidOf(t, e.base)
			l := e.plan(t, "pod", true, "s")
			l.PodCreates = tt.podCreates
			for i := 0; i < 2; i++ { // repeating it changes nothing
				if err := l.Prepare(tt.group); err != nil {
					t.Fatalf("Prepare(%q): %v", tt.group, err)
				}
				if got := perm(t, l.Dir); got != tt.want {
					t.Errorf("directory mode %v, want %v", got, tt.want)
				}
			}
			if tt.gid >= 0 && gidOf(t, l.Dir) != tt.gid {
				t.Errorf("directory gid %d, want %d", gidOf(t, l.Dir), tt.gid)
			}
			if perm(t, e.base) != 0o711 || gidOf(t, e.base) != baseGID {
				t.Errorf("base changed: mode %v gid %d", perm(t, e.base), gidOf(t, e.base))
			}
		})
	}
}

// TestPrepareKeepsOtherAttachments: a pod's second attachment in the same
// directory never narrows what the first one's app needs.
func TestPrepareKeepsOtherAttachments(t *testing.T) {
	for _, first := range []bool{true, false} {
		e := newEnv(t)
		a := e.plan(t, "pod", true, "net1")
		a.PodCreates = first
		b := e.plan(t, "pod", true, "net2")
		b.PodCreates = !first
		if err := a.Prepare(""); err != nil {
			t.Fatal(err)
		}
		if err := b.Prepare(""); err != nil {
			t.Fatal(err)
		}
		if got := perm(t, a.Dir); got != 0o777|fs.ModeSticky {
			t.Errorf("first podCreates=%v: directory mode %v, want sticky 0777 for the app that creates its socket", first, got)
		}
	}
}

// TestPrepareShared: a directory of several pods' sockets is traversable by
// all and listable by none, writable (sticky) once an app must create its
// socket there; it keeps its group whatever vhost.group says.
func TestPrepareShared(t *testing.T) {
	e := newEnv(t)
	l := e.plan(t, "cni/shared", false, "memif-a.sock")
	l.Shared = true
	if err := l.Prepare("12345"); err != nil {
		t.Fatal(err)
	}
	if got := perm(t, l.Dir); got != 0o711 {
		t.Errorf("new shared directory mode %v, want 0711", got)
	}
	if gidOf(t, l.Dir) == 12345 {
		t.Error("a shared directory took one attachment's group")
	}
	for _, old := range []fs.FileMode{0o700, 0o755, 0o777} {
		if err := os.Chmod(l.Dir, old); err != nil {
			t.Fatal(err)
		}
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		want := old&^0o044 | 0o711
		if want&0o022 != 0 {
			want |= fs.ModeSticky
		}
		if got := perm(t, l.Dir); got != want {
			t.Errorf("shared directory %v became %v, want %v", old, got, want)
		}
	}
	if err := os.Chmod(l.Dir, 0o711); err != nil {
		t.Fatal(err)
	}
	slave := e.plan(t, "cni/shared", false, "memif-b.sock")
	slave.Shared, slave.PodCreates = true, true
	if err := slave.Prepare(""); err != nil {
		t.Fatal(err)
	}
	if got := perm(t, l.Dir); got != 0o733|fs.ModeSticky {
		t.Errorf("shared directory for an app that creates its socket: %v, want sticky 0733", got)
	}
	if err := l.Prepare(""); err != nil {
		t.Fatal(err)
	}
	if got := perm(t, l.Dir); got != 0o733|fs.ModeSticky {
		t.Errorf("another attachment narrowed the shared directory to %v", got)
	}
	if err := l.Cleanup(); err != nil || !exists(l.Dir) {
		t.Errorf("Cleanup removed the shared directory (%v)", err)
	}
}

// TestPrepareUnlisted: the directory other pods mount loses its read bits
// for group and others; the rest of its mode stays.
func TestPrepareUnlisted(t *testing.T) {
	for _, rel := range []string{".", "cni"} {
		e := newEnv(t)
		visible := filepath.Join(e.base, rel)
		if err := os.MkdirAll(visible, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{e.base, visible} {
			if err := os.Chmod(d, 0o775); err != nil {
				t.Fatal(err)
			}
		}
		l := e.plan(t, filepath.Join(rel, "pod"), true, "s")
		l.Unlisted = visible
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		if got := perm(t, visible); got != 0o731 {
			t.Errorf("%s: mode %v, want 0731", rel, got)
		}
		if rel != "." && perm(t, e.base) != 0o775 {
			t.Errorf("the base above it changed to %v", perm(t, e.base))
		}
	}
	e := newEnv(t)
	l := e.plan(t, "pod", true, "s")
	l.Unlisted = t.TempDir()
	if err := l.Prepare(""); err == nil {
		t.Error("Prepare narrowed a directory outside the base")
	}
	if exists(l.Dir) {
		t.Error("a failed Prepare left the directory")
	}
}

// TestPrepareUnknownGroup: the group is resolved before anything is
// created, so an unknown one leaves nothing behind, not even the base.
func TestPrepareUnknownGroup(t *testing.T) {
	for _, group := range []string{"no-such-group-userspace-cni", "4294967296"} {
		root := t.TempDir()
		base := filepath.Join(root, "new", "base")
		pol := &policy.Policy{SharedDirs: []string{base}, ShortSocketDir: filepath.Join(root, "s")}
		l, err := Plan(pol, filepath.Join(base, strings.Repeat("d", 100)), true, "s")
		if err != nil {
			t.Fatal(err)
		}
		err = l.Prepare(group)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("vhost.group %q", group)) {
			t.Fatalf("Prepare(%q) = %v, want an error naming the group", group, err)
		}
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Errorf("Prepare(%q) created %v", group, entries)
		}
	}
}

// TestPrepareUndo: when a later step of Prepare fails, the directories it
// created are removed; those that were there before stay.
func TestPrepareUndo(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(root, "new", "base")
	// The short link's directory cannot be created: the last step fails.
	pol := &policy.Policy{SharedDirs: []string{base}, ShortSocketDir: filepath.Join(file, "s")}
	l, err := Plan(pol, filepath.Join(base, "a", "b", strings.Repeat("d", 100)), true, "s")
	if err != nil {
		t.Fatal(err)
	}
	for _, group := range []string{"", "12345"} {
		if err := l.Prepare(group); err == nil {
			t.Fatalf("Prepare(%q) succeeded", group)
		}
		if exists(filepath.Join(root, "new")) {
			t.Errorf("Prepare(%q) left %s behind", group, filepath.Join(root, "new"))
		}
	}

	// A directory an earlier attachment of the pod created stays.
	e := newEnv(t)
	first := e.plan(t, strings.Repeat("d", 100), true, "net1")
	if err := first.Prepare(""); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(first.Dir, "configData-net1.json"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	second := e.plan(t, strings.Repeat("d", 100), true, "net2")
	if err := os.Remove(second.ShortLink); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(second.ShortLink, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := second.Prepare(""); err == nil {
		t.Fatal("Prepare over a regular file at the short link succeeded")
	}
	if !exists(filepath.Join(first.Dir, "configData-net1.json")) {
		t.Error("the undo removed what an earlier attachment created")
	}
	// An empty directory that was there before stays too.
	e2 := newEnv(t)
	pre := e2.plan(t, strings.Repeat("e", 100), true, "s")
	if err := os.Mkdir(pre.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e2.short, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pre.ShortLink, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pre.Prepare(""); err == nil {
		t.Fatal("Prepare over a regular file at the short link succeeded")
	}
	if !exists(pre.Dir) {
		t.Error("the undo removed a directory it had not created")
	}
}

func TestPrepareNested(t *testing.T) {
	e := newEnv(t)
	l := e.plan(t, "a/b/pod", true, "s")
	if err := l.Prepare(""); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if got := perm(t, l.Dir); got != 0o755 {
		t.Errorf("directory mode %v", got)
	}
	// The pod app must be able to reach its directory; other pods that
	// mount one above it must not be able to list it.
	for _, d := range []string{"a", "a/b"} {
		if got := perm(t, filepath.Join(e.base, d)); got != 0o711 {
			t.Errorf("intermediate %s has mode %v, want 0711: traversable, not listable, not writable", d, got)
		}
	}
}

func TestPrepareNotOwnDir(t *testing.T) {
	e := newEnv(t)
	vol := filepath.Join(e.base, "volume")
	if err := os.Mkdir(vol, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(vol, 0o750); err != nil {
		t.Fatal(err)
	}
	l := e.plan(t, "volume", false, "s")
	if err := l.Prepare(""); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if got := perm(t, vol); got != 0o750 {
		t.Errorf("a pod's own volume changed mode to %v", got)
	}
}

func TestPrepareBaseAsOwnDir(t *testing.T) {
	// An empty container id makes the per-pod directory the base itself; its
	// permissions must not be opened up.
	e := newEnv(t)
	l := e.plan(t, configdata.ShortID(""), true, "s")
	if err := l.Prepare(""); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if got := perm(t, e.base); got != 0o711 {
		t.Errorf("base mode changed to %v", got)
	}
}

func TestPrepareCreatesBase(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "new", "base")
	pol := &policy.Policy{SharedDirs: []string{base}, ShortSocketDir: filepath.Join(root, "s")}
	l, err := Plan(pol, filepath.Join(base, "pod"), true, "s")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Prepare(""); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if fi, err := os.Stat(l.Dir); err != nil || !fi.IsDir() {
		t.Errorf("socket directory not created: %v", err)
	}
	// Pods that mount the base cannot list it; above it, the usual mode.
	if got := perm(t, base); got != 0o711 {
		t.Errorf("created base has mode %v, want 0711", got)
	}
	if got := perm(t, filepath.Dir(base)); got != 0o755 {
		t.Errorf("created parent of the base has mode %v, want 0755", got)
	}
}

func TestPrepareShortLink(t *testing.T) {
	e := newEnv(t)
	l := e.plan(t, strings.Repeat("d", 100), true, "0123456789ab-net1")
	if l.ShortLink == "" {
		t.Fatal("no short link planned")
	}
	if err := l.Prepare(""); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if target, err := os.Readlink(l.ShortLink); err != nil || target != l.Dir {
		t.Fatalf("short link -> %q, %v; want %q", target, err, l.Dir)
	}
	// A socket made through the short link lands in the directory.
	liveSocket(t, l.ConnectPath())
	if !exists(l.SocketPath()) {
		t.Errorf("socket not at %s", l.SocketPath())
	}
	// Prepare again keeps the correct link.
	if err := l.Prepare(""); err != nil {
		t.Fatalf("second Prepare: %v", err)
	}
	if target, _ := os.Readlink(l.ShortLink); target != l.Dir {
		t.Errorf("short link -> %q", target)
	}
}

func TestPrepareReplacesStaleShortLink(t *testing.T) {
	e := newEnv(t)
	l := e.plan(t, strings.Repeat("d", 100), true, "0123456789ab-net1")
	if err := os.MkdirAll(e.short, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := t.TempDir()
	if err := os.Symlink(stale, l.ShortLink); err != nil {
		t.Fatal(err)
	}
	if err := l.Prepare(""); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if target, err := os.Readlink(l.ShortLink); err != nil || target != l.Dir {
		t.Errorf("short link -> %q, %v; want %q", target, err, l.Dir)
	}
	if !exists(stale) {
		t.Error("the stale link's target was removed")
	}
}

func TestRemoveStaleSocket(t *testing.T) {
	e := newEnv(t)

	t.Run("dead socket removed", func(t *testing.T) {
		l := e.plan(t, "dead", true, "s")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		deadSocket(t, l.SocketPath())
		if err := l.RemoveStaleSocket(); err != nil {
			t.Fatalf("RemoveStaleSocket: %v", err)
		}
		if exists(l.SocketPath()) {
			t.Error("dead socket still there")
		}
	})

	t.Run("live socket refused", func(t *testing.T) {
		l := e.plan(t, "live", true, "s")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		liveSocket(t, l.SocketPath())
		err := l.RemoveStaleSocket()
		if !errors.Is(err, ErrSocketInUse) {
			t.Fatalf("RemoveStaleSocket = %v, want ErrSocketInUse", err)
		}
		if !exists(l.SocketPath()) {
			t.Error("live socket removed")
		}
	})

	t.Run("live socket through short link refused", func(t *testing.T) {
		l := e.plan(t, strings.Repeat("l", 100), true, "s")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		liveSocket(t, l.ConnectPath())
		if err := l.RemoveStaleSocket(); !errors.Is(err, ErrSocketInUse) {
			t.Fatalf("RemoveStaleSocket = %v, want ErrSocketInUse", err)
		}
	})

	t.Run("dead socket through short link removed", func(t *testing.T) {
		l := e.plan(t, strings.Repeat("m", 100), true, "s")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		deadSocket(t, l.ConnectPath())
		if err := l.RemoveStaleSocket(); err != nil {
			t.Fatalf("RemoveStaleSocket: %v", err)
		}
		if exists(l.SocketPath()) {
			t.Error("dead socket still there")
		}
	})

	t.Run("regular file refused", func(t *testing.T) {
		l := e.plan(t, "file", true, "s")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(l.SocketPath(), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := l.RemoveStaleSocket()
		if err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("RemoveStaleSocket = %v, want a not-a-socket error", err)
		}
		if data, err := os.ReadFile(l.SocketPath()); err != nil || string(data) != "keep" {
			t.Errorf("regular file changed: %q, %v", data, err)
		}
	})

	t.Run("nothing there", func(t *testing.T) {
		l := e.plan(t, "empty", true, "s")
		if err := l.RemoveStaleSocket(); err != nil {
			t.Errorf("RemoveStaleSocket without a directory: %v", err)
		}
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		if err := l.RemoveStaleSocket(); err != nil {
			t.Errorf("RemoveStaleSocket without a socket: %v", err)
		}
	})
}

func TestSetSocketPerms(t *testing.T) {
	e := newEnv(t)
	l := e.plan(t, "pod", true, "s")
	if err := l.Prepare(""); err != nil {
		t.Fatal(err)
	}
	liveSocket(t, l.SocketPath())
	if err := l.SetSocketPerms(""); err != nil {
		t.Fatalf("SetSocketPerms: %v", err)
	}
	if got := perm(t, l.SocketPath()); got != 0o666 {
		t.Errorf("socket mode %v, want 0666", got)
	}
	if err := l.SetSocketPerms("54321"); err != nil {
		t.Fatalf("SetSocketPerms(group): %v", err)
	}
	if got := perm(t, l.SocketPath()); got != 0o660 {
		t.Errorf("socket mode %v, want 0660", got)
	}
	if got := gidOf(t, l.SocketPath()); got != 54321 {
		t.Errorf("socket gid %d, want 54321", got)
	}
	if err := l.SetSocketPerms("no-such-group-userspace-cni"); err == nil {
		t.Error("SetSocketPerms with an unknown group succeeded")
	}
	missing := e.plan(t, "missing", true, "s")
	if err := missing.SetSocketPerms(""); err == nil {
		t.Error("SetSocketPerms without a directory succeeded")
	}
}

func TestLookupGID(t *testing.T) {
	root, err := user.LookupGroupId("0")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		group string
		want  int
		ok    bool
	}{
		{"0", 0, true},
		{"12345", 12345, true},
		{"4294967294", netconf.MaxGID, true},
		{root.Name, 0, true},
		{"no-such-group-userspace-cni", 0, false},
		// Beyond 32 bits chown would truncate (2^32+1 is gid 1, 2^32
		// root); 2^32-1 is chown's "no change".
		{"4294967295", 0, false},
		{"4294967296", 0, false},
		{"4294967297", 0, false},
		{"18446744073709551617", 0, false},
		{"99999999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, err := LookupGID(tt.group)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("LookupGID(%q) = %d, %v; want %d ok=%v", tt.group, got, err, tt.want, tt.ok)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	e := newEnv(t)
	l := e.plan(t, "pod", true, "s")
	if err := l.Prepare(""); err != nil {
		t.Fatal(err)
	}
	name := "configData-0123456789ab-net1.json"
	// A temp file left by an interrupted write does not block the next one.
	if err := os.WriteFile(filepath.Join(l.Dir, "."+name+".tmp"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{`{"v":1}`, `{"v":2,"longer":true}`, ``} {
		if err := l.WriteFileAtomic(name, []byte(content)); err != nil {
			t.Fatalf("WriteFileAtomic: %v", err)
		}
		got, err := os.ReadFile(filepath.Join(l.Dir, name))
		if err != nil || string(got) != content {
			t.Errorf("content %q, %v; want %q", got, err, content)
		}
		if p := perm(t, filepath.Join(l.Dir, name)); p != 0o644 {
			t.Errorf("file mode %v, want 0644", p)
		}
		entries, err := os.ReadDir(l.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != name {
			var names []string
			for _, en := range entries {
				names = append(names, en.Name())
			}
			t.Errorf("directory holds %q, want only %q", names, name)
		}
	}
	if !l.Exists(name) || l.Exists("other") {
		t.Error("Exists is wrong")
	}
	if err := l.RemoveFile(name); err != nil {
		t.Fatalf("RemoveFile: %v", err)
	}
	if exists(filepath.Join(l.Dir, name)) || l.Exists(name) {
		t.Error("file not removed")
	}
	if err := l.RemoveFile(name); err != nil {
		t.Errorf("RemoveFile of a missing file: %v", err)
	}
	missing := e.plan(t, "nodir", true, "s")
	if err := missing.RemoveFile(name); err != nil {
		t.Errorf("RemoveFile without a directory: %v", err)
	}
	if err := missing.WriteFileAtomic(name, []byte("x")); err == nil {
		t.Error("WriteFileAtomic without a directory succeeded")
	}
	if missing.Exists(name) {
		t.Error("Exists without a directory")
	}
}

func TestWriteFileAtomicReplacesSymlink(t *testing.T) {
	// A pod plants a symlink with the config file's name: the write replaces
	// the link and leaves its target alone.
	e := newEnv(t)
	l := e.plan(t, "pod", true, "s")
	if err := l.Prepare(""); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(e.base, "victim")
	if err := os.WriteFile(target, []byte("victim"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(l.Dir, "cfg.json")); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFileAtomic("cfg.json", []byte("new")); err != nil {
		t.Fatalf("WriteFileAtomic: %v", err)
	}
	if data, _ := os.ReadFile(target); string(data) != "victim" {
		t.Errorf("symlink target overwritten: %q", data)
	}
	fi, err := os.Lstat(filepath.Join(l.Dir, "cfg.json"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("cfg.json is not a regular file: %v %v", fi, err)
	}
}

func TestOpenDirFD(t *testing.T) {
	e := newEnv(t)
	l := e.plan(t, "pod", true, "s")
	if _, err := l.OpenDirFD(); err == nil {
		t.Error("OpenDirFD without a directory succeeded")
	}
	if err := l.Prepare(""); err != nil {
		t.Fatal(err)
	}
	f, err := l.OpenDirFD()
	if err != nil {
		t.Fatalf("OpenDirFD: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.Stat(l.Dir)
	if !os.SameFile(fi, want) {
		t.Error("OpenDirFD opened another directory")
	}
}

func TestCleanup(t *testing.T) {
	t.Run("removes socket, short link and empty own dir", func(t *testing.T) {
		e := newEnv(t)
		l := e.plan(t, strings.Repeat("d", 100), true, "s")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		deadSocket(t, l.ConnectPath())
		if err := l.Cleanup(); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		for _, p := range []string{l.SocketPath(), l.ShortLink, l.Dir} {
			if exists(p) {
				t.Errorf("%s still exists", p)
			}
		}
		if !exists(e.base) || perm(t, e.base) != 0o711 {
			t.Error("base removed or changed")
		}
		// Idempotent.
		if err := l.Cleanup(); err != nil {
			t.Errorf("second Cleanup: %v", err)
		}
	})

	t.Run("keeps a non-empty dir", func(t *testing.T) {
		e := newEnv(t)
		l := e.plan(t, "pod", true, "s")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		deadSocket(t, l.SocketPath())
		other := filepath.Join(l.Dir, "other-net2")
		deadSocket(t, other)
		if err := l.Cleanup(); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if exists(l.SocketPath()) {
			t.Error("socket not removed")
		}
		if !exists(other) || !exists(l.Dir) {
			t.Error("another attachment's socket or the shared dir removed")
		}
	})

	t.Run("never removes a non-socket with the socket's name", func(t *testing.T) {
		e := newEnv(t)
		l := e.plan(t, "pod", true, "net1")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(l.SocketPath(), []byte("pod data"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := l.Cleanup(); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if data, err := os.ReadFile(l.SocketPath()); err != nil || string(data) != "pod data" {
			t.Errorf("regular file removed or changed: %q, %v", data, err)
		}
	})

	t.Run("does not remove net10 when cleaning net1", func(t *testing.T) {
		e := newEnv(t)
		l := e.plan(t, "pod", true, "id-net1")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		deadSocket(t, l.SocketPath())
		net10 := filepath.Join(l.Dir, "id-net10")
		deadSocket(t, net10)
		if err := l.Cleanup(); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if exists(l.SocketPath()) || !exists(net10) {
			t.Errorf("net1 exists=%v net10 exists=%v", exists(l.SocketPath()), exists(net10))
		}
	})

	t.Run("keeps a dir it does not own", func(t *testing.T) {
		e := newEnv(t)
		l := e.plan(t, "volume", false, "s")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		deadSocket(t, l.SocketPath())
		if err := l.Cleanup(); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if exists(l.SocketPath()) {
			t.Error("socket not removed")
		}
		if !exists(l.Dir) {
			t.Error("a directory the plugin does not own was removed")
		}
	})

	t.Run("keeps the base", func(t *testing.T) {
		e := newEnv(t)
		l := e.plan(t, "", true, "s")
		if err := l.Prepare(""); err != nil {
			t.Fatal(err)
		}
		if err := l.Cleanup(); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if !exists(e.base) {
			t.Error("base removed")
		}
	})

	t.Run("leaves a short link that points elsewhere", func(t *testing.T) {
		e := newEnv(t)
		l := e.plan(t, strings.Repeat("d", 100), true, "s")
		if err := os.MkdirAll(e.short, 0o755); err != nil {
			t.Fatal(err)
		}
		elsewhere := t.TempDir()
		if err := os.Symlink(elsewhere, l.ShortLink); err != nil {
			t.Fatal(err)
		}
		if err := l.Cleanup(); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		if target, err := os.Readlink(l.ShortLink); err != nil || target != elsewhere {
			t.Errorf("foreign short link changed: %q, %v", target, err)
		}
	})

	t.Run("nothing prepared", func(t *testing.T) {
		e := newEnv(t)
		l := e.plan(t, "never", true, "s")
		if err := l.Cleanup(); err != nil {
			t.Errorf("Cleanup of nothing: %v", err)
		}
		gone := &Layout{Base: filepath.Join(e.base, "gone"), Dir: filepath.Join(e.base, "gone", "pod"), OwnDir: true, SocketName: "s"}
		if err := gone.Cleanup(); err != nil {
			t.Errorf("Cleanup with a missing base: %v", err)
		}
	})
}

func TestLayoutOutsideBase(t *testing.T) {
	// A record edited to put Dir outside Base is refused by every operation.
	e := newEnv(t)
	outside := t.TempDir()
	before := snapshot(t, outside)
	l := &Layout{Base: e.base, Dir: outside, OwnDir: true, SocketName: "s"}
	if err := l.Prepare(""); err == nil {
		t.Error("Prepare outside the base succeeded")
	}
	if err := l.WriteFileAtomic("f", []byte("x")); err == nil {
		t.Error("WriteFileAtomic outside the base succeeded")
	}
	if err := l.Cleanup(); err == nil {
		t.Error("Cleanup outside the base succeeded")
	}
	checkUntouched(t, outside, before)
}

// TestSymlinkEscape replaces the per-pod directory, or a directory between it
// and the base, with a symlink to a directory outside the base, as a pod
// sharing the base could. Nothing outside may be created, written, changed
// or deleted.
func TestSymlinkEscape(t *testing.T) {
	for _, tt := range []struct {
		name string
		rel  string // the socket directory, relative to the base
		link string // what is replaced by the symlink, relative to the base
	}{
		{"per-pod dir", "pod", "pod"},
		{"parent dir", "shared/pod", "shared"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			outside := t.TempDir()
			if err := os.Chmod(outside, 0o700); err != nil {
				t.Fatal(err)
			}
			// What the outside directory holds where the plugin would act.
			target := outside
			if tt.rel != tt.link {
				target = filepath.Join(outside, "pod")
				if err := os.Mkdir(target, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			const sock, cfg = "0123456789ab-net1", "configData-0123456789ab-net1.json"
			deadSocket(t, filepath.Join(target, sock))
			if err := os.WriteFile(filepath.Join(target, cfg), []byte("outside"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(e.base, tt.link)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(e.base, tt.link)); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, outside)

			l := e.plan(t, tt.rel, true, sock)
			if err := l.Prepare(""); err == nil {
				t.Error("Prepare through a symlink out of the base succeeded")
			}
			if err := l.Prepare("12345"); err == nil {
				t.Error("Prepare(group) through a symlink out of the base succeeded")
			}
			if err := l.WriteFileAtomic(cfg, []byte("inside")); err == nil {
				t.Error("WriteFileAtomic through a symlink out of the base succeeded")
			}
			if err := l.WriteFileAtomic("new.json", []byte("inside")); err == nil {
				t.Error("WriteFileAtomic of a new file through a symlink out of the base succeeded")
			}
			_ = l.RemoveStaleSocket()
			_ = l.RemoveFile(cfg)
			_ = l.SetSocketPerms("")
			if l.Exists(cfg) {
				t.Error("Exists sees a file outside the base")
			}
			if f, err := l.OpenDirFD(); err == nil {
				f.Close()
				t.Error("OpenDirFD opened a directory outside the base")
			}
			_ = l.Cleanup()
			_ = l.Cleanup()

			checkUntouched(t, outside, before)
			if data, err := os.ReadFile(filepath.Join(target, cfg)); err != nil || string(data) != "outside" {
				t.Errorf("outside file: %q, %v", data, err)
			}
			if perm(t, e.base) != 0o711 {
				t.Errorf("base mode changed to %v", perm(t, e.base))
			}
		})
	}
}

// TestSymlinkWithinBase plants the per-pod directory as a symlink to the base
// itself or to another pod's directory: os.Root allows that (it stays
// beneath the base), but Prepare must not give those directories this pod's
// permissions.
func TestSymlinkWithinBase(t *testing.T) {
	for _, target := range []string{".", "other"} {
		t.Run(target, func(t *testing.T) {
			e := newEnv(t)
			other := filepath.Join(e.base, "other")
			if err := os.Mkdir(other, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(other, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(e.base, "pod")); err != nil {
				t.Fatal(err)
			}
			l := e.plan(t, "pod", true, "s")
			for _, group := range []string{"", "12345"} {
				if err := l.Prepare(group); err == nil {
					t.Errorf("Prepare(%q) through a planted symlink succeeded", group)
				}
			}
			if got := perm(t, e.base); got != 0o711 {
				t.Errorf("base mode changed to %v", got)
			}
			if got := perm(t, other); got != 0o700 {
				t.Errorf("other pod's directory mode changed to %v", got)
			}
			if gidOf(t, other) == 12345 || gidOf(t, e.base) == 12345 {
				t.Error("group changed through the symlink")
			}
		})
	}
}

func TestCleanupErrorsJoined(t *testing.T) {
	// Cleanup reports a failure but still removes what it can: the short
	// link goes even when the directory cannot be opened.
	e := newEnv(t)
	l := e.plan(t, strings.Repeat("d", 100), true, "s")
	if err := l.Prepare(""); err != nil {
		t.Fatal(err)
	}
	// Replace the directory with a file: opening it fails.
	if err := os.Remove(l.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.Dir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := l.Cleanup()
	if err == nil {
		t.Error("Cleanup with a file in place of the directory reported nothing")
	}
	if exists(l.ShortLink) {
		t.Error("short link kept")
	}
	names, _ := os.ReadDir(e.base)
	if !slices.ContainsFunc(names, func(d os.DirEntry) bool { return d.Name() == filepath.Base(l.Dir) }) {
		t.Error("the file in place of the directory was removed")
	}
}

func TestPrepareShortLinkErrors(t *testing.T) {
	t.Run("short dir under a file", func(t *testing.T) {
		e := newEnv(t)
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		e.pol.ShortSocketDir = filepath.Join(file, "s")
		l := e.plan(t, strings.Repeat("d", 100), true, "s")
		if err := l.Prepare(""); err == nil {
			t.Error("Prepare with an uncreatable short socket dir succeeded")
		}
	})
	t.Run("short link name taken by a file", func(t *testing.T) {
		e := newEnv(t)
		l := e.plan(t, strings.Repeat("d", 100), true, "s")
		if err := os.MkdirAll(e.short, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(l.ShortLink, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := l.Prepare(""); err == nil {
			t.Error("Prepare over a regular file at the short link succeeded")
		}
		if data, _ := os.ReadFile(l.ShortLink); string(data) != "keep" {
			t.Errorf("file at the short link changed: %q", data)
		}
	})
	t.Run("base under a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		pol := &policy.Policy{SharedDirs: []string{filepath.Join(file, "base")}, ShortSocketDir: t.TempDir()}
		l, err := Plan(pol, filepath.Join(file, "base", "pod"), true, "s")
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Prepare(""); err == nil {
			t.Error("Prepare with an uncreatable base succeeded")
		}
	})
}

// RemoveDead leaves a missing path and a live listener's socket alone and
// removes a socket nothing listens on.
func TestRemoveDead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sock")
	if removed, err := RemoveDead(path); err != nil || removed {
		t.Fatalf("no file: removed %v, %v", removed, err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	if removed, err := RemoveDead(path); err != nil || removed {
		t.Fatalf("a listening socket: removed %v, %v", removed, err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the live socket is gone: %v", err)
	}
	_ = l.Close()
	if removed, err := RemoveDead(path); err != nil || !removed {
		t.Fatalf("a socket nothing listens on: removed %v, %v", removed, err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("the dead socket is still there: %v", err)
	}
}
