package ovsdb

import "context"

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
