package ovsdb

import (
	"encoding/json"
	"reflect"
	"testing"

	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/userspace-cni/userspace/pkg/ovsdb/vswitch"
)

// rowOf decodes wire JSON the way a transact reply is decoded.
func rowOf(t *testing.T, js string) ovs.Row {
	t.Helper()
	var r ovs.Row
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDecodeRow(t *testing.T) {
	five, minusOne := 5, -1
	errText := "could not open"
	for _, tc := range []struct {
		name string
		row  string
		want vswitch.Interface
	}{
		{"optional int set", `{"ofport": 5}`, vswitch.Interface{Ofport: &five}},
		{"optional int negative", `{"ofport": -1}`, vswitch.Interface{Ofport: &minusOne}},
		{"optional int empty set", `{"ofport": ["set", []]}`, vswitch.Interface{}},
		{"optional string", `{"error": "could not open"}`, vswitch.Interface{Error: &errText}},
		{"maps", `{"options": ["map", [["vhost-server-path", "/s"]]], "external_ids": ["map", []]}`,
			vswitch.Interface{Options: map[string]string{"vhost-server-path": "/s"}, ExternalIDs: map[string]string{}}},
		{"uuid and name", `{"_uuid": ["uuid", "2f1e0f6a-0000-4000-8000-000000000001"], "name": "p1", "type": "dpdkvhostuserclient"}`,
			vswitch.Interface{UUID: "2f1e0f6a-0000-4000-8000-000000000001", Name: "p1", Type: "dpdkvhostuserclient"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got vswitch.Interface
			if err := decodeRow(rowOf(t, tc.row), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeRowSets(t *testing.T) {
	// A one-element set arrives as the bare atom; a UUID set as uuids.
	var p vswitch.Port
	if err := decodeRow(rowOf(t, `{"interfaces": ["uuid", "2f1e0f6a-0000-4000-8000-000000000001"], "tag": ["set", []]}`), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Interfaces) != 1 || p.Interfaces[0] != "2f1e0f6a-0000-4000-8000-000000000001" || p.Tag != nil {
		t.Errorf("port %+v", p)
	}
	var o vswitch.OpenvSwitch
	if err := decodeRow(rowOf(t, `{"dpdk_initialized": true, "iface_types": ["set", ["dpdk", "dpdkvhostuser"]], "next_cfg": 3}`), &o); err != nil {
		t.Fatal(err)
	}
	if !o.DpdkInitialized || !reflect.DeepEqual(o.IfaceTypes, []string{"dpdk", "dpdkvhostuser"}) || o.NextCfg != 3 {
		t.Errorf("root %+v", o)
	}
}

func TestDecodeRowTypeMismatch(t *testing.T) {
	var i vswitch.Interface
	if err := decodeRow(rowOf(t, `{"name": 7}`), &i); err == nil {
		t.Error("a number for a string column was accepted")
	}
	if err := decodeRow(rowOf(t, `{"options": "x"}`), &i); err == nil {
		t.Error("an atom for a map column was accepted")
	}
	if err := decodeRow(ovs.Row{}, i); err == nil {
		t.Error("a non-pointer model was accepted")
	}
}
