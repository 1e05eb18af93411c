package ovsdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// A killed ovs-vswitchd leaves the sockets of its server-mode
// (dpdkvhostuser) ports in its run directory. A restarted ovs-vswitchd
// cannot bind those names ("Address already in use"), and OVS 3.1 with DPDK
// 22.11 then leaves the failed socket registered in DPDK with its file
// descriptor already closed (netdev_dpdk_vhost_construct frees its vhost_id
// without rte_vhost_driver_unregister). Every later attempt at a port on
// that path, which any reconfiguration of the switch makes, finds the dead
// registration first and binds, then closes, whatever descriptor now has
// that number: seen here, the listener of a bridge's management socket,
// after which ovs-vswitchd's main loop blocked in accept() for good, holding
// its lock and applying nothing. The only safe order is that the dead
// sockets are gone before the restarted ovs-vswitchd creates its ports,
// which WatchVswitchd and RemoveDeadServerSocket provide.

// WatchVswitchd keeps a request for ovs-vswitchd's lock queued on a
// connection of its own until ctx ends. ovsdb-server grants a lock to its
// waiters in the order they asked, and ovs-vswitchd creates no port before it
// holds its lock; so when ovs-vswitchd dies the watcher gets the lock before
// any restarted ovs-vswitchd can. Each time the lock is granted, down runs
// while it is held (between two runs of the switch), then the lock is
// released and asked for again after retry. died says the lock came after
// waiting for it: an ovs-vswitchd held it and is gone. asked, if not nil,
// runs once the first request is answered (granted or queued). A lost
// connection is dialled again after retry.
func WatchVswitchd(ctx context.Context, endpoint string, retry time.Duration, down func(died bool), asked func()) {
	if asked == nil {
		asked = func() {}
	}
	asked = sync.OnceFunc(asked)
	for ctx.Err() == nil {
		_ = watchVswitchd(ctx, endpoint, retry, down, asked)
		sleepCtx(ctx, retry)
	}
}

func watchVswitchd(ctx context.Context, endpoint string, retry time.Duration, down func(died bool), asked func()) error {
	c, err := dial(ctx, endpoint)
	if err != nil {
		return err
	}
	defer c.Close()
	// A request is answered at once (granted or queued): bound it.
	call := func(f func(ctx context.Context) error) error {
		cctx, cancel := context.WithTimeout(ctx, DefaultCallTimeout)
		defer cancel()
		return f(cctx)
	}
	for ctx.Err() == nil {
		var granted bool
		if err := call(func(ctx context.Context) (err error) {
			granted, err = c.lock(ctx, vswitchdLock)
			return err
		}); err != nil {
			return err
		}
		asked()
		if !granted {
			if err := c.waitLocked(ctx, vswitchdLock); err != nil {
				return err
			}
		}
		down(!granted)
		if err := call(func(ctx context.Context) error { return c.unlock(ctx, vswitchdLock) }); err != nil {
			return err
		}
		// A restarted ovs-vswitchd queued meanwhile holds the lock now;
		// otherwise none runs yet, and the next request is granted again.
		sleepCtx(ctx, retry)
	}
	return ctx.Err()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ServerSocket is the socket ovs-vswitchd creates for a server-mode port,
// as its engine record names it ("" for a client-mode port).
func ServerSocket(data json.RawMessage) (string, error) {
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return "", fmt.Errorf("decoding the engine record: %w", err)
	}
	if rec.Type != TypeVhostServer {
		return "", nil
	}
	return rec.SwitchSocket, nil
}

// RemoveDeadServerSocket removes the socket that a server-mode port's
// engine record names in ovs-vswitchd's run directory when nothing listens
// on it any more (its ovs-vswitchd was killed); a live socket, a client-mode
// port or a missing file are left as they are. It returns the path removed.
// Call it only while no ovs-vswitchd runs (see WatchVswitchd).
func RemoveDeadServerSocket(data json.RawMessage) (string, error) {
	path, err := ServerSocket(data)
	if err != nil || path == "" {
		return "", err
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return "", nil // not a socket: not the switch's, left alone
	}
	if removed, err := sockdir.RemoveDead(path); err != nil || !removed {
		return "", err
	}
	return path, nil
}
