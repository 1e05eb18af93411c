package ovsdb

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/userspace-cni/userspace/pkg/ovsdb/vswitch"
)

// canonical decodes a JSON request and sorts the pairs of every OVSDB map,
// which json.Marshal writes in Go's random map order.
func canonical(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", data, err)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
			if len(x) == 2 && x[0] == "map" {
				pairs, _ := x[1].([]any)
				slices.SortFunc(pairs, func(a, b any) int {
					ka, _ := json.Marshal(a.([]any)[0])
					kb, _ := json.Marshal(b.([]any)[0])
					return slices.Compare(ka, kb)
				})
			}
			return x
		case map[string]any:
			for k := range x {
				x[k] = walk(x[k])
			}
			return x
		}
		return v
	}
	return walk(v)
}

// TestAppendRequestMatchesEncodingJSON: the hand-written encoding sends
// what encoding/json and libovsdb's MarshalJSON methods would, for every
// kind of operation and value the engine builds, and for hostile strings.
func TestAppendRequestMatchesEncodingJSON(t *testing.T) {
	timeout := 0
	hostile := "q\"b\\s/<>&\n\r\t\x01é\u2028\u2029\xff end"
	named := ovs.UUID{GoUUID: "new_port"}
	real := ovs.UUID{GoUUID: "2f4d1d93-2b1e-4f6a-9f3c-6e1b0a1c2d3e"}
	ops := []ovs.Operation{
		openvSwitchSelect(),
		selectOp(vswitch.PortTable, ownerWhere("c1", hostile), "name"),
		{Op: ovs.OperationInsert, Table: vswitch.InterfaceTable, UUIDName: "new_iface", Row: ovs.Row{
			"name": "vhu" + hostile, "type": "dpdkvhostuserclient", "ofport_request": 7, "big": int64(1) << 40,
			"options":      ovsMap(map[string]string{"vhost-server-path": "/var/run/x.sock", "n_rxq": "2", hostile: hostile}),
			"external_ids": ovsMap(nil), "admin_state": ovs.OvsSet{GoSet: []any{}},
			"flag": true, "mtu_request": ovs.OvsSet{GoSet: []any{1500}}, "ratio": 0.5,
		}},
		{Op: ovs.OperationInsert, Table: vswitch.PortTable, UUIDName: "new_port", Row: ovs.Row{
			"name": "p", "interfaces": uuidSet("new_iface", real.GoUUID),
		}},
		{Op: ovs.OperationMutate, Table: vswitch.BridgeTable,
			Where:     []ovs.Condition{cond("_uuid", ovs.ConditionEqual, real)},
			Mutations: []ovs.Mutation{*ovs.NewMutation("ports", ovs.MutateOperationInsert, uuidSet(named.GoUUID))}},
		bridgeExistsOp(real.GoUUID, hostile),
		{Op: ovs.OperationDelete, Table: vswitch.InterfaceTable, Where: []ovs.Condition{cond("name", ovs.ConditionEqual, hostile)}},
		{Op: ovs.OperationUpdate, Table: vswitch.InterfaceTable, Row: ovs.Row{"external_ids": ovsMap(map[string]string{"a": "1"})},
			Where: []ovs.Condition{cond("_uuid", ovs.ConditionNotEqual, named)}},
		{Op: ovs.OperationComment, Comment: &hostile},
		{Op: ovs.OperationAssert, Lock: &hostile},
		{Op: ovs.OperationCommit, Durable: new(bool)},
		{Op: ovs.OperationWait, Table: "t", Timeout: &timeout, Rows: []ovs.Row{{}, {"x": nil}}, Until: "!="},
	}
	params := []any{database}
	for _, op := range ops {
		params = append(params, op)
	}
	for _, tc := range []struct {
		method string
		params []any
	}{{"transact", params}, {"lock", []any{hostile}}, {"echo", []any{}}} {
		got, err := appendRequest(nil, 42, tc.method, tc.params)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(map[string]any{"id": 42, "method": tc.method, "params": tc.params})
		if err != nil {
			t.Fatal(err)
		}
		if g, w := canonical(t, got), canonical(t, want); !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n got  %s\n want %s", tc.method, got, want)
		}
	}
}

// TestAppendRequestError: a value encoding/json refuses is an error naming
// the operation, not a malformed request.
func TestAppendRequestError(t *testing.T) {
	op := ovs.Operation{Op: ovs.OperationInsert, Table: vswitch.PortTable, Row: ovs.Row{"bad": make(chan int)}}
	if _, err := appendRequest(nil, 1, "transact", []any{database, op}); err == nil {
		t.Fatal("a channel value encoded")
	}
}
