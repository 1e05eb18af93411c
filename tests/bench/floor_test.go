package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	libclient "github.com/ovn-kubernetes/libovsdb/client"
	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/userspace-cni/userspace/pkg/ovsdb/vswitch"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// floorClient is a persistent OVSDB connection: no process start, no
// connect, no schema fetch per attachment, which is the floor any plugin
// invocation sits on.
func floorClient(b *testing.B) libclient.Client {
	b.Helper()
	m, err := vswitch.FullDatabaseModel()
	if err != nil {
		b.Fatal(err)
	}
	discard := logr.Discard()
	cli, err := libclient.NewOVSDBClient(m, libclient.WithEndpoint(bed.ovs.DBEndpoint()), libclient.WithLogger(&discard))
	if err != nil {
		b.Fatal(err)
	}
	if err := cli.Connect(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cli.Close)
	return cli
}

func transact(cli libclient.Client, ops ...ovs.Operation) ([]ovs.OperationResult, error) {
	res, err := cli.Transact(context.Background(), ops...)
	if err != nil {
		return nil, err
	}
	if _, err := ovs.CheckOperationResults(res, ops); err != nil {
		return nil, fmt.Errorf("%v: %+v", err, res)
	}
	return res, nil
}

func where(col string, v any) []ovs.Condition {
	return []ovs.Condition{ovs.NewCondition(col, ovs.ConditionEqual, v)}
}

func uuids(names ...string) ovs.OvsSet {
	s := ovs.OvsSet{}
	for _, n := range names {
		s.GoSet = append(s.GoSet, ovs.UUID{GoUUID: n})
	}
	return s
}

// portOps inserts a dpdkvhostuserclient port into a bridge.
func portOps(bridge, name, socket, ref string) []ovs.Operation {
	return []ovs.Operation{
		{Op: ovs.OperationInsert, Table: vswitch.InterfaceTable, UUIDName: "i" + ref, Row: ovs.Row{
			"name": name, "type": "dpdkvhostuserclient",
			"options": ovs.OvsMap{GoMap: map[any]any{"vhost-server-path": socket}}}},
		{Op: ovs.OperationInsert, Table: vswitch.PortTable, UUIDName: "p" + ref, Row: ovs.Row{
			"name": name, "interfaces": uuids("i" + ref)}},
		{Op: ovs.OperationMutate, Table: vswitch.BridgeTable, Where: where("name", bridge),
			Mutations: []ovs.Mutation{*ovs.NewMutation("ports", ovs.MutateOperationInsert, uuids("p"+ref))}},
	}
}

// anyRow matches the one Open_vSwitch row: libovsdb drops an empty "where"
// from mutate and wait operations, which OVSDB then rejects.
func anyRow() []ovs.Condition {
	return []ovs.Condition{ovs.NewCondition("next_cfg", ovs.ConditionGreaterThanOrEqual, 0)}
}

// bumpOp bumps next_cfg, as ovs-vsctl does, so the switch acknowledges
// the transaction by raising cur_cfg to it.
func bumpOp() ovs.Operation {
	return ovs.Operation{Op: ovs.OperationMutate, Table: vswitch.OpenvSwitchTable, Where: anyRow(),
		Mutations: []ovs.Mutation{*ovs.NewMutation("next_cfg", ovs.MutateOperationAdd, 1)}}
}

// waitApplied waits inside ovsdb-server until cur_cfg reaches next_cfg.
func waitApplied(cli libclient.Client) error {
	res, err := transact(cli, ovs.Operation{Op: ovs.OperationSelect, Table: vswitch.OpenvSwitchTable,
		Where: []ovs.Condition{}, Columns: []string{"next_cfg"}})
	if err != nil {
		return err
	}
	next := res[0].Rows[0]["next_cfg"]
	timeout := 10000
	_, err = transact(cli, ovs.Operation{Op: ovs.OperationWait, Table: vswitch.OpenvSwitchTable, Where: anyRow(),
		Columns: []string{"cur_cfg"}, Until: "==", Rows: []ovs.Row{{"cur_cfg": next}}, Timeout: &timeout})
	return err
}

// apply runs ops as one transaction; confirmed also waits, as ovs-vsctl
// does, for the switch to acknowledge it.
func apply(cli libclient.Client, confirmed bool, ops ...ovs.Operation) error {
	if confirmed {
		ops = append(ops, bumpOp())
	}
	if _, err := transact(cli, ops...); err != nil {
		return err
	}
	if confirmed {
		return waitApplied(cli)
	}
	return nil
}

// benchFloor adds and deletes a port with one transaction each from a
// persistent client; confirmed waits for the switch to apply each.
func benchFloor(b *testing.B, bridge string, confirmed bool) {
	ensureBridge(b, bridge)
	cli := floorClient(b)
	dir := filepath.Join(bed.root, "floor")
	s := samples{}
	for b.Loop() {
		name := testbed.SandboxID()[:12] + "-net1"
		start := time.Now()
		if err := apply(cli, confirmed, portOps(bridge, name, filepath.Join(dir, name), "new")...); err != nil {
			b.Fatal(err)
		}
		s.add("add", time.Since(start))

		start = time.Now()
		res, err := transact(cli, ovs.Operation{Op: ovs.OperationSelect, Table: vswitch.PortTable,
			Where: where("name", name), Columns: []string{"_uuid"}})
		if err != nil {
			b.Fatal(err)
		}
		port := res[0].Rows[0]["_uuid"].(ovs.UUID)
		if err := apply(cli, confirmed, ovs.Operation{Op: ovs.OperationMutate, Table: vswitch.BridgeTable, Where: where("name", bridge),
			Mutations: []ovs.Mutation{*ovs.NewMutation("ports", ovs.MutateOperationDelete, ovs.OvsSet{GoSet: []any{port}})}}); err != nil {
			b.Fatal(err)
		}
		s.add("del", time.Since(start))
	}
	s.report(b)
}

// addPorts puts n dpdkvhostuserclient ports on a bridge in batches and
// waits for the switch to apply them.
func addPorts(bridge string, n int) error {
	m, err := vswitch.FullDatabaseModel()
	if err != nil {
		return err
	}
	discard := logr.Discard()
	cli, err := libclient.NewOVSDBClient(m, libclient.WithEndpoint(bed.ovs.DBEndpoint()), libclient.WithLogger(&discard))
	if err != nil {
		return err
	}
	if err := cli.Connect(context.Background()); err != nil {
		return err
	}
	defer cli.Close()
	dir := filepath.Join(bed.root, "scale")
	const batch = 100
	for i := 0; i < n; i += batch {
		var ops []ovs.Operation
		for j := i; j < i+batch && j < n; j++ {
			name := fmt.Sprintf("scale-%04d", j)
			ops = append(ops, portOps(bridge, name, filepath.Join(dir, name), fmt.Sprint(j))...)
		}
		if _, err := transact(cli, append(ops, bumpOp())...); err != nil {
			return err
		}
		if err := waitApplied(cli); err != nil {
			return fmt.Errorf("switch applying ports %d..%d: %w", i, i+batch, err)
		}
	}
	return nil
}
