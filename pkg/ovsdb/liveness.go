package ovsdb

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
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
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", strings.TrimPrefix(endpoint, "unix:"))
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req := map[string]any{"method": "lock", "params": []string{vswitchdLock}, "id": "usp-lock"}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return false, err
	}
	dec := json.NewDecoder(conn)
	for {
		var msg struct {
			ID     any             `json:"id"`
			Method string          `json:"method"`
			Result json.RawMessage `json:"result"`
			Error  any             `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			return false, fmt.Errorf("reading lock reply: %w", err)
		}
		if msg.Method != "" {
			continue // a notification (e.g. echo); not our reply
		}
		if msg.Error != nil {
			return false, fmt.Errorf("lock request refused: %v", msg.Error)
		}
		var res struct {
			Locked bool `json:"locked"`
		}
		if err := json.Unmarshal(msg.Result, &res); err != nil {
			return false, fmt.Errorf("lock reply %s: %w", msg.Result, err)
		}
		return !res.Locked, nil
	}
}
