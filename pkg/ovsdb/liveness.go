package ovsdb

import (
	"context"
	"fmt"

	"github.com/userspace-cni/userspace/pkg/engine"
	"github.com/userspace-cni/userspace/pkg/ovsdb/vswitch"
)

// vswitchdLock is the OVSDB lock ovs-vswitchd holds for as long as it is
// running and connected to its database (bridge.c takes it at start).
const vswitchdLock = "ovs_vswitchd"

// vswitchdRunning asks ovsdb-server for the lock ovs-vswitchd holds: if the
// lock is granted to us, no switch daemon is serving this database, and a
// port added now would sit in the database unapplied. The probe uses its own
// short-lived connection (libovsdb has no lock API); closing it releases the
// lock at once if we were granted it.
func vswitchdRunning(ctx context.Context, endpoint string) (bool, error) {
	c, err := dial(ctx, endpoint)
	if err != nil {
		return false, err
	}
	defer c.Close()
	granted, err := c.lock(ctx, vswitchdLock)
	if err != nil {
		return false, err
	}
	return !granted, nil
}

// Identity tells one run of the switch from another, for a watcher that
// must notice a restart: a new database has a new Open_vSwitch row, and a
// restarted ovs-vswitchd releases its lock for a moment.
type Identity struct {
	// Root is the Open_vSwitch row's UUID ("" when the database is not
	// initialised yet).
	Root string
	// NextCfg is the row's next_cfg: bumped by every configuration change
	// made through ovs-vsctl, and back to a low number in a new database.
	NextCfg int
	// Vswitchd says ovs-vswitchd holds its lock on the database.
	Vswitchd bool
}

// Identity reads the switch's identity, bounded by the call timeout.
func (e *Engine) Identity(ctx context.Context) (Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	alive := make(chan error, 1)
	var running bool
	go func() {
		var err error
		running, err = vswitchdRunning(ctx, e.cfg.Endpoint)
		alive <- err
	}()
	res, err := e.transact(ctx, selectOp(vswitch.OpenvSwitchTable, nil, "next_cfg"))
	aerr := <-alive
	if err != nil {
		return Identity{}, err
	}
	if aerr != nil {
		return Identity{}, fmt.Errorf("%w: %w", engine.ErrUnavailable, aerr)
	}
	roots, err := decode[vswitch.OpenvSwitch](vswitch.OpenvSwitchTable, res[0])
	if err != nil {
		return Identity{}, err
	}
	id := Identity{Vswitchd: running}
	if len(roots) == 1 {
		id.Root, id.NextCfg = roots[0].UUID, roots[0].NextCfg
	}
	return id, nil
}
