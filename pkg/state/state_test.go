package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/sockdir"
)

func sampleRecord(cid, ifName string) *Record {
	return &Record{
		ContainerID:  cid,
		IfName:       ifName,
		Network:      "userspace-ovs-net-1",
		Netns:        "/var/run/netns/cni-1234",
		PodNamespace: "default",
		PodName:      "pod-" + cid,
		PodUID:       "uid-" + cid,
		Engine:       "ovs-dpdk",
		Layout: &sockdir.Layout{
			Base: "/var/lib/cni/vhostuser", Dir: "/var/lib/cni/vhostuser/" + cid, OwnDir: true,
			SocketName: configdata.ShortID(cid) + "-" + ifName, ShortLink: "/run/userspace-cni/0123456789ab",
		},
		ConfigDataFile: "configData-" + configdata.ShortID(cid) + "-" + ifName + ".json",
		IPAM:           "host-local",
		EngineData:     json.RawMessage(`{"port":"` + cid + `-` + ifName + `","bridgeCreated":true}`),
		Created:        time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
	}
}

func recordsEqual(t *testing.T, got, want *Record) {
	t.Helper()
	if got == nil {
		t.Fatalf("got no record, want %+v", want)
	}
	if !got.Created.Equal(want.Created) {
		t.Errorf("Created = %v, want %v", got.Created, want.Created)
	}
	// EngineData is kept as JSON; MarshalIndent may re-indent it.
	var gd, wd bytes.Buffer
	if err := json.Compact(&gd, got.EngineData); err != nil {
		t.Fatalf("engine data %q: %v", got.EngineData, err)
	}
	if err := json.Compact(&wd, want.EngineData); err != nil {
		t.Fatal(err)
	}
	if gd.String() != wd.String() {
		t.Errorf("EngineData = %s, want %s", gd.String(), wd.String())
	}
	g, w := *got, *want
	g.Created, w.Created = time.Time{}, time.Time{}
	g.EngineData, w.EngineData = nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("record = %+v (layout %+v), want %+v (layout %+v)", g, g.Layout, w, w.Layout)
	}
}

func TestSaveLoadDelete(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "state"))
	if s.Dir() == "" || !strings.HasSuffix(s.Dir(), "state") {
		t.Errorf("Dir = %q", s.Dir())
	}
	r, err := s.Load("abc", "net1")
	if r != nil || err != nil {
		t.Fatalf("Load before Save = %+v, %v; want nil, nil", r, err)
	}
	want := sampleRecord("0123456789abcdef", "net1")
	want.Version = 0
	if err := s.Save(want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if want.Version != recordVersion {
		t.Errorf("Save did not set Version: %d", want.Version)
	}
	got, err := s.Load("0123456789abcdef", "net1")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	recordsEqual(t, got, want)
	if got.Version != 3 {
		t.Errorf("Version = %d, want 3", got.Version)
	}

	// Saving again replaces the record.
	want.Netns = "/proc/1/ns/net"
	if err := s.Save(want); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	got, _ = s.Load("0123456789abcdef", "net1")
	recordsEqual(t, got, want)

	// Records are private to the plugin and no temporary files are left.
	entries, err := os.ReadDir(filepath.Join(s.Dir(), "attachments"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("attachments holds %d entries, want 1", len(entries))
	}
	fi, err := os.Stat(filepath.Join(s.Dir(), "attachments", entries[0].Name()))
	if err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("record mode %v, %v: readable by others", fi.Mode(), err)
	}

	if err := s.Delete("0123456789abcdef", "net1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if r, err := s.Load("0123456789abcdef", "net1"); r != nil || err != nil {
		t.Errorf("Load after Delete = %+v, %v", r, err)
	}
	if err := s.Delete("0123456789abcdef", "net1"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if err := New(filepath.Join(t.TempDir(), "never")).Delete("x", "y"); err != nil {
		t.Errorf("Delete in a store never written: %v", err)
	}
}

func TestNoCollisions(t *testing.T) {
	s := New(t.TempDir())
	pairs := [][2]string{
		{"a-b", "net1"}, {"a_b", "net1"}, {"a.b", "net1"},
		{"a", "b-net1"}, {"a-b", "net-1"}, {"a", "b_net1"},
		{"abc", "net_1"}, {"abc", "net.1"}, {"abc", "net-1"},
		{"ab", "c.net1"}, {"ab.c", "net1"},
		{"a", "b@c"}, {"a", "b"},
	}
	for _, p := range pairs {
		if err := s.Save(sampleRecord(p[0], p[1])); err != nil {
			t.Fatalf("Save(%v): %v", p, err)
		}
	}
	for _, p := range pairs {
		r, err := s.Load(p[0], p[1])
		if err != nil {
			t.Fatalf("Load(%v): %v", p, err)
		}
		if r == nil || r.ContainerID != p[0] || r.IfName != p[1] {
			t.Errorf("Load(%v) = %+v", p, r)
		}
	}
	list, err := s.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != len(pairs) {
		t.Errorf("List has %d records, want %d", len(list), len(pairs))
	}
	// Deleting one leaves its look-alikes.
	if err := s.Delete("a-b", "net1"); err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs[1:] {
		if r, _ := s.Load(p[0], p[1]); r == nil {
			t.Errorf("record %v gone after deleting a-b/net1", p)
		}
	}
}

func TestList(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "state"))
	list, err := s.List()
	if list != nil || err != nil {
		t.Fatalf("List of an empty store = %v, %v", list, err)
	}
	want := map[string]bool{}
	for _, p := range [][2]string{{"c1", "net1"}, {"c1", "net2"}, {"c2", "net1"}} {
		if err := s.Save(sampleRecord(p[0], p[1])); err != nil {
			t.Fatal(err)
		}
		want[p[0]+"/"+p[1]] = true
	}
	dir := filepath.Join(s.Dir(), "attachments")
	// Files List must skip: a temp file, a non-record, a directory.
	for name, content := range map[string]string{".record-123": "{partial", "notes.txt": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	list, err = s.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	got := map[string]bool{}
	for _, r := range list {
		got[r.ContainerID+"/"+r.IfName] = true
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}

	// A corrupt record is reported and does not hide the others.
	corrupt := filepath.Join(dir, "bad@net1.json")
	if err := os.WriteFile(corrupt, []byte(`{"containerID": "bad", `), 0o600); err != nil {
		t.Fatal(err)
	}
	list, err = s.List()
	if err == nil || !strings.Contains(err.Error(), "bad@net1.json") || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("List error = %v, want the corrupt record named", err)
	}
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ContainerID+"/"+r.IfName)
	}
	sort.Strings(ids)
	if strings.Join(ids, ",") != "c1/net1,c1/net2,c2/net1" {
		t.Errorf("List with a corrupt record = %v", ids)
	}
	// Load of the corrupt record is an error, not "no record".
	if r, err := s.Load("bad", "net1"); r != nil || err == nil {
		t.Errorf("Load of a corrupt record = %+v, %v", r, err)
	}
}

func TestStoreErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(file)
	if err := s.Save(sampleRecord("c", "net1")); err == nil {
		t.Error("Save under a file succeeded")
	}
	if _, err := s.List(); err == nil {
		t.Error("List under a file succeeded")
	}
	if _, err := s.LockSandbox(context.Background(), "c1"); err == nil {
		t.Error("Lock under a file succeeded")
	}
	// A directory in place of a record is an error.
	s = New(t.TempDir())
	if err := os.MkdirAll(filepath.Join(s.Dir(), "attachments", "c@net1.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Load("c", "net1"); r != nil || err == nil {
		t.Errorf("Load of a directory = %+v, %v", r, err)
	}
	// A record that cannot be encoded is refused before anything is written.
	bad := sampleRecord("c", "net2")
	bad.EngineData = json.RawMessage(`{not json`)
	if err := s.Save(bad); err == nil {
		t.Error("Save of invalid engine data succeeded")
	}
	if r, _ := s.Load("c", "net2"); r != nil {
		t.Error("invalid record written")
	}
}

func TestLockMutualExclusion(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "state"))
	const workers, rounds = 8, 10
	var inside, maxInside, total int32
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				unlock, err := s.LockSandbox(ctx, "c1")
				cancel()
				if err != nil {
					errs <- err
					return
				}
				n := atomic.AddInt32(&inside, 1)
				for {
					m := atomic.LoadInt32(&maxInside)
					if n <= m || atomic.CompareAndSwapInt32(&maxInside, m, n) {
						break
					}
				}
				time.Sleep(200 * time.Microsecond)
				atomic.AddInt32(&total, 1)
				atomic.AddInt32(&inside, -1)
				unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Lock: %v", err)
	}
	if maxInside != 1 {
		t.Errorf("%d holders at once, want 1", maxInside)
	}
	if total != workers*rounds {
		t.Errorf("%d critical sections, want %d", total, workers*rounds)
	}
}

func TestLockTimeout(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "state"))
	unlock, err := s.LockSandbox(context.Background(), "c1")
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	released := false
	defer func() {
		if !released {
			unlock()
		}
	}()

	t.Run("expired context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		u, err := s.LockSandbox(ctx, "c1")
		if err == nil {
			u()
			t.Fatal("Lock with a cancelled context succeeded while the lock is held")
		}
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "lock") {
			t.Errorf("error = %v, want a lock timeout wrapping context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Lock took %v with a cancelled context", d)
		}
	})

	t.Run("short deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		u, err := s.LockSandbox(ctx, "c1")
		if err == nil {
			u()
			t.Fatal("Lock succeeded while the lock is held")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want context.DeadlineExceeded", err)
		}
		d := time.Since(start)
		if d < 90*time.Millisecond || d > 2*time.Second {
			t.Errorf("Lock returned after %v, want about the 100ms deadline", d)
		}
	})

	// Once the holder releases, a waiter gets the lock.
	unlock()
	released = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := s.LockSandbox(ctx, "c1")
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	u()
}

// lockHeld reports whether another open file description holds the lock.
func lockHeld(t *testing.T, s *Store) bool {
	t.Helper()
	f, err := os.Open(filepath.Join(s.Dir(), "locks", "c1"))
	if os.IsNotExist(err) {
		return false // unlocked: the holder removed the file
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return true
		}
		t.Fatal(err)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

func TestLockReleasedByUnlock(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "state"))
	unlock, err := s.LockSandbox(context.Background(), "c1")
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if !lockHeld(t, s) {
		t.Fatal("lock not held after Lock")
	}
	unlock()
	if lockHeld(t, s) {
		t.Fatal("lock still held after unlock")
	}
	// Immediately available again, even with an already-expired context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	unlock, err = s.LockSandbox(ctx, "c1")
	if err != nil {
		t.Fatalf("uncontended Lock: %v", err)
	}
	unlock()

	// A waiter blocked in Lock gets it as soon as the holder releases.
	unlock, err = s.LockSandbox(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		u, err := s.LockSandbox(ctx, "c1")
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("waiter returned while the lock was held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("waiter: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter did not get the lock after release")
	}
}

func TestLockRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "locks"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "locks", "c1")); err != nil {
		t.Fatal(err)
	}
	if u, err := New(dir).LockSandbox(context.Background(), "c1"); err == nil {
		u()
		t.Error("Lock through a symlinked lock file succeeded")
	}
}
