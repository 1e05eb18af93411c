// Package memif is memif over VPP's binary API: socket naming, the
// translation of the configuration's role and mode, the requests that
// register a socket file and create or delete an interface, and reading
// memifs and socket registrations back.
package memif

import (
	"fmt"
	"net"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/ethernet_types"
	"go.fd.io/govpp/binapi/interface_types"
	vppmemif "go.fd.io/govpp/binapi/memif"

	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/vppapi"
)

// AllocateID asks VPP to choose a socket id (VPP's "~0").
const AllocateID = ^uint32(0)

// IsSocketGone reports whether unregistering a socket failed only because
// the registration is already gone: VPP answers INVALID_ARGUMENT (-73) for
// an unknown socket id, not -2.
func IsSocketGone(err error) bool {
	return vppapi.IsRetval(err, int32(api.INVALID_ARGUMENT)) || vppapi.IsRetval(err, int32(api.INVALID_SW_IF_INDEX))
}

// Messages are the VPP API messages this package sends or receives, for
// the compatibility check at connect time.
func Messages() []api.Message {
	return []api.Message{
		(*vppmemif.MemifSocketFilenameAddDelV2)(nil), (*vppmemif.MemifSocketFilenameAddDelV2Reply)(nil),
		(*vppmemif.MemifCreateV2)(nil), (*vppmemif.MemifCreateV2Reply)(nil),
		(*vppmemif.MemifDelete)(nil), (*vppmemif.MemifDeleteReply)(nil),
		(*vppmemif.MemifDump)(nil), (*vppmemif.MemifDetails)(nil),
		(*vppmemif.MemifSocketFilenameDump)(nil), (*vppmemif.MemifSocketFilenameDetails)(nil),
	}
}

// Spec is one memif interface as the configuration describes it.
type Spec struct {
	Role       string // netconf.MemifMaster or netconf.MemifSlave
	Mode       string // netconf.MemifEthernet, MemifIP or MemifInjectPunt
	SocketPath string
	// ID is the interface id within its socket; both ends must agree. The
	// plugin uses one socket per attachment, so 0.
	ID         uint32
	RingSize   uint32
	BufferSize uint16
	Queues     uint8
	Secret     string
	MAC        string
}

// SpecFrom builds a Spec from one side of a configuration.
func SpecFrom(m netconf.MemifConf, socketPath string) Spec {
	return Spec{
		Role: m.Role, Mode: m.Mode, SocketPath: socketPath,
		RingSize: uint32(m.RingSize), BufferSize: uint16(m.BufferSize), Queues: uint8(m.Queues),
		Secret: m.Secret, MAC: m.MAC,
	}
}

// Role translates a configured role.
func Role(role string) (vppmemif.MemifRole, error) {
	switch role {
	case netconf.MemifMaster, "":
		return vppmemif.MEMIF_ROLE_API_MASTER, nil
	case netconf.MemifSlave:
		return vppmemif.MEMIF_ROLE_API_SLAVE, nil
	}
	return 0, fmt.Errorf("unknown memif role %q", role)
}

// RoleName is the configuration's name of a VPP role.
func RoleName(r vppmemif.MemifRole) string {
	if r == vppmemif.MEMIF_ROLE_API_SLAVE {
		return netconf.MemifSlave
	}
	return netconf.MemifMaster
}

// Mode translates a configured mode.
func Mode(mode string) (vppmemif.MemifMode, error) {
	switch mode {
	case netconf.MemifEthernet, "":
		return vppmemif.MEMIF_MODE_API_ETHERNET, nil
	case netconf.MemifIP:
		return vppmemif.MEMIF_MODE_API_IP, nil
	case netconf.MemifInjectPunt:
		return vppmemif.MEMIF_MODE_API_PUNT_INJECT, nil
	}
	return 0, fmt.Errorf("unknown memif mode %q", mode)
}

// ModeName is the configuration's name of a VPP mode.
func ModeName(m vppmemif.MemifMode) string {
	switch m {
	case vppmemif.MEMIF_MODE_API_IP:
		return netconf.MemifIP
	case vppmemif.MEMIF_MODE_API_PUNT_INJECT:
		return netconf.MemifInjectPunt
	}
	return netconf.MemifEthernet
}

// RegisterSocketRequest registers the socket file under an id VPP chooses:
// letting VPP allocate is what keeps concurrent attachments from colliding.
func RegisterSocketRequest(path string) *vppmemif.MemifSocketFilenameAddDelV2 {
	// default= values in binapi tags are not applied: set every field.
	return &vppmemif.MemifSocketFilenameAddDelV2{IsAdd: true, SocketID: AllocateID, SocketFilename: path}
}

// UnregisterSocketRequest removes a socket id's registration.
func UnregisterSocketRequest(socketID uint32) *vppmemif.MemifSocketFilenameAddDelV2 {
	return &vppmemif.MemifSocketFilenameAddDelV2{IsAdd: false, SocketID: socketID}
}

// CreateRequest creates the interface on a registered socket.
func CreateRequest(s Spec, socketID uint32) (*vppmemif.MemifCreateV2, error) {
	role, err := Role(s.Role)
	if err != nil {
		return nil, err
	}
	mode, err := Mode(s.Mode)
	if err != nil {
		return nil, err
	}
	if len(s.Secret) > netconf.MaxMemifSecret {
		return nil, fmt.Errorf("memif secret is %d bytes, at most %d", len(s.Secret), netconf.MaxMemifSecret)
	}
	req := &vppmemif.MemifCreateV2{
		Role: role, Mode: mode, ID: s.ID, SocketID: socketID,
		RingSize: s.RingSize, BufferSize: s.BufferSize,
		RxQueues: s.Queues, TxQueues: s.Queues, Secret: s.Secret,
	}
	if s.MAC != "" {
		hw, err := net.ParseMAC(s.MAC)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("memif MAC %q is not a 48-bit MAC address", s.MAC)
		}
		req.HwAddr = ethernet_types.MacAddress(hw)
	}
	return req, nil
}

// DeleteRequest deletes an interface. VPP leaves a master's socket file on
// disk: the caller removes it.
func DeleteRequest(swIfIndex interface_types.InterfaceIndex) *vppmemif.MemifDelete {
	return &vppmemif.MemifDelete{SwIfIndex: swIfIndex}
}

// Interface is a memif VPP reports, joined with its socket file.
type Interface struct {
	SwIfIndex  interface_types.InterfaceIndex
	Name       string
	ID         uint32
	SocketID   uint32
	SocketPath string
	Role       string
	Mode       string
	AdminUp    bool
	LinkUp     bool
}

// ReadInterfaces reads the replies of a memif_dump.
func ReadInterfaces(req api.MultiRequestCtx) ([]Interface, error) {
	var out []Interface
	err := vppapi.ReadDump(req, "memif_dump", func(d *vppmemif.MemifDetails) {
		out = append(out, Interface{
			SwIfIndex: d.SwIfIndex, Name: d.IfName, ID: d.ID, SocketID: d.SocketID,
			Role: RoleName(d.Role), Mode: ModeName(d.Mode),
			AdminUp: d.Flags&interface_types.IF_STATUS_API_FLAG_ADMIN_UP != 0,
			LinkUp:  d.Flags&interface_types.IF_STATUS_API_FLAG_LINK_UP != 0,
		})
	})
	return out, err
}

// ReadSockets reads the replies of a memif_socket_filename_dump.
func ReadSockets(req api.MultiRequestCtx) (map[uint32]string, error) {
	out := map[uint32]string{}
	err := vppapi.ReadDump(req, "memif_socket_filename_dump", func(d *vppmemif.MemifSocketFilenameDetails) {
		out[d.SocketID] = d.SocketFilename
	})
	return out, err
}
