package vppapi_test

import (
	"errors"
	"fmt"
	"testing"

	"go.fd.io/govpp/api"
	interfaces "go.fd.io/govpp/binapi/interface"

	"github.com/userspace-cni/userspace/pkg/vppapi"
)

func TestIsRetval(t *testing.T) {
	err := fmt.Errorf("deleting: %w", api.VPPApiError(-2))
	if !vppapi.IsRetval(err, -2) || vppapi.IsRetval(err, -74) {
		t.Error("wrapped retval not recognised")
	}
	if !vppapi.IsRetval(errors.Join(errors.New("x"), err), -2) {
		t.Error("joined retval not recognised")
	}
	if vppapi.IsRetval(errors.New("-2"), -2) || vppapi.IsRetval(nil, 0) {
		t.Error("non-VPP error taken for a retval")
	}
}

// dump replays details, then the end of the dump or an error.
type dump struct {
	names []string
	err   error
}

func (d *dump) ReceiveReply(msg api.Message) (bool, error) {
	if len(d.names) == 0 {
		return d.err == nil, d.err
	}
	msg.(*interfaces.SwInterfaceDetails).InterfaceName = d.names[0]
	d.names = d.names[1:]
	return false, nil
}

func TestReadDump(t *testing.T) {
	var got []string
	add := func(d *interfaces.SwInterfaceDetails) { got = append(got, d.InterfaceName) }
	if err := vppapi.ReadDump(&dump{names: []string{"local0", "memif1/0"}}, "sw_interface_dump", add); err != nil || len(got) != 2 || got[1] != "memif1/0" {
		t.Errorf("ReadDump: %v, %v", got, err)
	}
	got = nil
	err := vppapi.ReadDump(&dump{names: []string{"local0"}, err: errors.New("connection lost")}, "sw_interface_dump", add)
	if err == nil || err.Error() != "sw_interface_dump: connection lost" || len(got) != 1 {
		t.Errorf("ReadDump with an error: %v, %v", got, err)
	}
}
