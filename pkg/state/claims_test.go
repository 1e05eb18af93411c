package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClaimPath(t *testing.T) {
	s := New(t.TempDir())
	const sock = "/var/lib/cni/vhostuser/abc/sock"
	if err := s.ClaimPath(sock, "c1", "net1"); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	// Idempotent for the owner (a retried ADD).
	if err := s.ClaimPath(sock+"/", "c1", "net1"); err != nil {
		t.Fatalf("claiming again: %v", err)
	}
	// The owner has no record yet, but its sandbox's verb runs: refused.
	unlock, err := s.LockSandbox(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	err = s.ClaimPath(sock, "c1", "net2")
	var conflict *ConflictError
	if !errors.As(err, &conflict) || conflict.Owner.IfName != "net1" || !strings.Contains(err.Error(), "container c1 interface net1") {
		t.Fatalf("claim by another attachment while the owner's ADD runs = %v, want a conflict naming c1/net1", err)
	}
	unlock()
	// With a record, the owner is alive even when idle.
	if err := s.Save(sampleRecord("c1", "net1")); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPath(sock, "c2", "net1"); !errors.As(err, &conflict) {
		t.Fatalf("claim of a live attachment's path = %v, want a conflict", err)
	}
	if own, _ := s.Owns(sock, "c2", "net1"); own {
		t.Error("a refused claim changed the owner")
	}
	// Release by someone else leaves the claim.
	if err := s.ReleasePath(sock, "c2", "net1"); err != nil {
		t.Fatal(err)
	}
	if own, _ := s.Owns(sock, "c1", "net1"); !own {
		t.Fatal("another attachment's release removed the owner's claim")
	}
	if err := s.ReleasePath(sock, "c1", "net1"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPath(sock, "c2", "net1"); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
}

func TestClaimTakesOverStaleOwner(t *testing.T) {
	s := New(t.TempDir())
	const dir = "/var/lib/cni/usrspcni/0123456789ab"
	// Sandbox claim of an ADD that died: no record, no verb running.
	if err := s.ClaimPath(dir, "dead", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.ClaimPath(dir, "alive", ""); err != nil {
		t.Fatalf("claim over a dead owner: %v", err)
	}
	if own, _ := s.Owns(dir, "alive", ""); !own {
		t.Error("the claim did not pass to the new owner")
	}
	// A sandbox with a record keeps its directory.
	if err := s.Save(sampleRecord("alive", "net1")); err != nil {
		t.Fatal(err)
	}
	var conflict *ConflictError
	if err := s.ClaimPath(dir, "third", ""); !errors.As(err, &conflict) || conflict.Owner.ContainerID != "alive" {
		t.Errorf("claim of a sandbox directory in use = %v, want a conflict naming container alive", err)
	}
}

// TestClaimRace: of many attachments claiming one path at once, exactly one
// gets it.
func TestClaimRace(t *testing.T) {
	s := New(t.TempDir())
	const n = 16
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%d", i)
			unlock, err := s.LockSandbox(context.Background(), id)
			if err != nil {
				t.Error(err)
				return
			}
			defer unlock()
			err = s.ClaimPath("/x/sock", id, "net1")
			var conflict *ConflictError
			switch {
			case err == nil:
				wins.Add(1)
				// As ADD does before it lets the sandbox go.
				if err := s.Save(sampleRecord(id, "net1")); err != nil {
					t.Error(err)
				}
			case !errors.As(err, &conflict):
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d attachments got the path, want 1", wins.Load())
	}
}

// TestSandboxLocksIndependent: a held sandbox lock blocks that sandbox only.
func TestSandboxLocksIndependent(t *testing.T) {
	s := New(t.TempDir())
	unlock, err := s.LockSandbox(context.Background(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	u, err := s.LockSandbox(ctx, "other")
	if err != nil {
		t.Fatalf("another sandbox waited for a held lock: %v", err)
	}
	u()
	if _, ok, err := s.TryLockSandbox("busy"); ok || err != nil {
		t.Errorf("TryLockSandbox of a held sandbox = %v, %v; want not taken", ok, err)
	}
	u, ok, err := s.TryLockSandbox("other")
	if !ok || err != nil {
		t.Fatalf("TryLockSandbox of a free sandbox = %v, %v", ok, err)
	}
	u()
	// Unlocking removes the lock file: no file per sandbox ever seen.
	if entries, _ := os.ReadDir(filepath.Join(s.Dir(), "locks")); len(entries) != 1 {
		t.Errorf("lock files left: %d, want only the held one", len(entries))
	}
}

// TestLongIDs: no id a runtime may pass makes a record impossible to write,
// read or delete (NAME_MAX is 255).
func TestLongIDs(t *testing.T) {
	s := New(t.TempDir())
	for _, n := range []int{64, 159, 160, 246, 300, 5000} {
		id := strings.Repeat("a", n)
		if err := s.Save(sampleRecord(id, "net1")); err != nil {
			t.Fatalf("id of %d: Save: %v", n, err)
		}
		r, err := s.Load(id, "net1")
		if err != nil || r == nil || r.ContainerID != id {
			t.Fatalf("id of %d: Load = %v, %v", n, r, err)
		}
		names, err := s.IfNames(id)
		if err != nil || len(names) != 1 || names[0] != "net1" {
			t.Errorf("id of %d: IfNames = %v, %v", n, names, err)
		}
		unlock, err := s.LockSandbox(context.Background(), id)
		if err != nil {
			t.Fatalf("id of %d: lock: %v", n, err)
		}
		unlock()
		// A claim holds its owner in a symlink's target (at most 4095
		// bytes): ADD refuses ids long enough not to fit.
		if n <= 300 {
			if err := s.ClaimPath("/p/"+id, id, "net1"); err != nil {
				t.Fatalf("id of %d: claim: %v", n, err)
			}
		}
		if err := s.Delete(id, "net1"); err != nil {
			t.Fatalf("id of %d: Delete: %v", n, err)
		}
		if r, err := s.Load(id, "net1"); r != nil || err != nil {
			t.Errorf("id of %d: record still there: %v, %v", n, r, err)
		}
	}
}

// A claim the plugin did not write (a regular file, or a link that is not
// its JSON) is ErrCorruptClaim, for every reader; a missing one is no claim.
func TestCorruptClaim(t *testing.T) {
	s := New(t.TempDir())
	const path = "/var/lib/cni/vhostuser/abc/sock"
	if err := s.ClaimPath(path, "c1", "net1"); err != nil {
		t.Fatal(err)
	}
	file := s.claimPath(path)
	for _, plant := range []struct {
		name string
		do   func() error
	}{
		{"link to no JSON", func() error { return os.Symlink("{", file) }},
		{"regular file", func() error { return os.WriteFile(file, []byte(`{"containerID":"c1"}`), 0o600) }},
	} {
		t.Run(plant.name, func(t *testing.T) {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			if err := plant.do(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Owner(path); !errors.Is(err, ErrCorruptClaim) {
				t.Errorf("Owner: %v, want ErrCorruptClaim", err)
			}
			if _, err := s.Owns(path, "c1", "net1"); !errors.Is(err, ErrCorruptClaim) {
				t.Errorf("Owns: %v, want ErrCorruptClaim", err)
			}
			if err := s.ReleasePath(path, "c1", "net1"); !errors.Is(err, ErrCorruptClaim) {
				t.Errorf("ReleasePath: %v, want ErrCorruptClaim", err)
			}
		})
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Owner(path); c != nil || err != nil {
		t.Errorf("Owner of an unclaimed path: %+v, %v", c, err)
	}
}
