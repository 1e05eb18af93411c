// Package netconf is the plugin's network configuration: the original
// userspace CNI schema, unchanged, plus optional extensions with safe
// defaults. It is the only place that parses the configuration from stdin;
// everything is validated up front, and errors are CNI errors that name the
// field and the offending value.
package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Engines, interface types, network types, modes and roles of the schema.
const (
	EngineOVSDPDK = "ovs-dpdk"
	EngineVPP     = "vpp"

	IfTypeVhostUser = "vhostuser"
	IfTypeMemif     = "memif"

	NetTypeBridge    = "bridge"
	NetTypeInterface = "interface"
	NetTypeNone      = "none"

	VhostClient = "client"
	VhostServer = "server"

	MemifMaster = "master"
	MemifSlave  = "slave"

	MemifEthernet   = "ethernet"
	MemifIP         = "ip"
	MemifInjectPunt = "inject-punt"
)

// DefaultOVSBridge is the bridge used when the configuration names none (the
// original plugin's default, which the application notes rely on).
const DefaultOVSBridge = "br0"

// MaxMTU is the largest MTU OVS-DPDK accepts on a vhost-user port
// (9728-byte frames less Ethernet header and CRC).
const MaxMTU = 9710

// SupportedVersions are the CNI spec versions the plugin implements.
var SupportedVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// VhostConf configures a vhost-user interface.
type VhostConf struct {
	Mode       string `json:"mode,omitempty"`
	Group      string `json:"group,omitempty"`
	Socketfile string `json:"socketfile,omitempty"`
}

// SocketFile is the socket file name this side names for its interface
// type (vhost.socketfile or memif.socketfile).
func (s *UserSpaceConf) SocketFile() string {
	if s.IfType == IfTypeMemif {
		return s.Memif.Socketfile
	}
	return s.Vhost.Socketfile
}

// SetSocketFile sets the socket file name of this side's interface type.
func (s *UserSpaceConf) SetSocketFile(name string) {
	if s.IfType == IfTypeMemif {
		s.Memif.Socketfile = name
	} else {
		s.Vhost.Socketfile = name
	}
}

// MemifConf configures a memif interface.
type MemifConf struct {
	Role       string `json:"role,omitempty"`
	Mode       string `json:"mode,omitempty"`
	Socketfile string `json:"socketfile,omitempty"`

	// Extensions, optional (0 or empty: VPP's defaults). Both ends of a
	// memif must agree on them, so the container side inherits them.
	RingSize   int    `json:"ringSize,omitempty"`
	BufferSize int    `json:"bufferSize,omitempty"`
	Queues     int    `json:"queues,omitempty"`
	Secret     string `json:"secret,omitempty"`
	// MAC is the interface's own address on this side.
	MAC string `json:"mac,omitempty"`
}

// Memif limits: VPP keeps the ring size as a power-of-two exponent of at
// most 14, the buffer size and queue counts in 16 and 8 bits, and the secret
// in a 24-byte field.
const (
	MaxMemifRingSize   = 1 << 14
	MaxMemifBufferSize = 65535
	MaxMemifQueues     = 255
	MaxMemifSecret     = 24
)

// BridgeConf configures the bridge (OVS) or bridge domain (VPP).
type BridgeConf struct {
	BridgeName string `json:"bridgeName,omitempty"`
	// BridgeID is deprecated but still used by published VPP examples.
	BridgeID int `json:"bridgeId,omitempty"`
	// VlanID tags the port (OVS); 0 means untagged.
	VlanID int `json:"vlanId,omitempty"`
}

// UserSpaceConf is one side (host or container) of an attachment; both sides
// share this shape in the original schema.
type UserSpaceConf struct {
	Engine  string     `json:"engine,omitempty"`
	IfType  string     `json:"iftype,omitempty"`
	NetType string     `json:"netType,omitempty"`
	Vhost   VhostConf  `json:"vhost,omitzero"`
	Memif   MemifConf  `json:"memif,omitzero"`
	Bridge  BridgeConf `json:"bridge,omitzero"`

	// OVSDBSocket is the OVSDB endpoint ("unix:/path" or "/path"); an
	// extension, host side only. Defaults to the node policy's.
	OVSDBSocket string `json:"ovsdbSocket,omitempty"`
	// VPPAPISocket is VPP's binary API socket; an extension, host side
	// only. Defaults to the node policy's (/run/vpp/api.sock).
	VPPAPISocket string `json:"vppApiSocket,omitempty"`
}

// RuntimeConfig carries the capabilities the runtime passes.
type RuntimeConfig struct {
	MAC string `json:"mac,omitempty"`
	// CNIDeviceInfoFile is where Multus wants the NPWG device-info written.
	CNIDeviceInfoFile string `json:"CNIDeviceInfoFile,omitempty"`
}

// CNIArgs are the per-pod options a runtime (Multus: the selection's
// "cni-args") passes in "args": {"cni": {...}}.
type CNIArgs struct {
	MAC string `json:"mac,omitempty"`
}

// NetConf is the whole network configuration.
type NetConf struct {
	types.PluginConf

	KubeConfig string        `json:"kubeconfig,omitempty"`
	SharedDir  string        `json:"sharedDir,omitempty"`
	LogFile    string        `json:"logFile,omitempty"`
	LogLevel   string        `json:"logLevel,omitempty"`
	Host       UserSpaceConf `json:"host"`
	Container  UserSpaceConf `json:"container"`

	// Extensions: optional, with safe defaults.
	MTU int    `json:"mtu,omitempty"`
	MAC string `json:"mac,omitempty"`

	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitzero"`
	Args          struct {
		CNI CNIArgs `json:"cni,omitzero"`
	} `json:"args,omitzero"`
}

// MarshalJSON encodes the whole configuration. Without it, the embedded
// types.PluginConf's MarshalJSON (pointer receiver) is promoted to *NetConf,
// and json.Marshal(conf) encodes only cniVersion, name, type, ipam and dns,
// silently dropping host, container and the rest.
func (c NetConf) MarshalJSON() ([]byte, error) {
	// A defined type has no methods of its own, and a non-addressable value
	// does not get the embedded pointer-receiver one: every field is encoded.
	type fields NetConf
	return json.Marshal(fields(c))
}

// Error codes used for configuration problems.
const (
	codeDecode  = types.ErrDecodingFailure
	codeInvalid = types.ErrInvalidNetworkConfig
)

// fieldError is a CNI error naming the field and value at fault.
func fieldError(field string, value any, problem string) *types.Error {
	return types.NewError(codeInvalid, fmt.Sprintf("invalid %s %s: %s", field, quote(value), problem), "")
}

// FieldError is the CNI error for an invalid value of a configuration
// field, in the words every check of the configuration uses.
func FieldError(field string, value any, problem string) *types.Error {
	return fieldError(field, value, problem)
}

func quote(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

// Parse decodes and validates a configuration, fills in defaults and derives
// the container side from the host side. Which host paths it may name is the
// node's to decide: see policy.Admit.
func Parse(data []byte) (*NetConf, error) {
	conf := &NetConf{}
	if isJSONSpace(data) {
		return nil, types.NewError(codeDecode, "empty network configuration: expected a JSON object", "")
	}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, decodeError(err)
	}
	if firstByte(data) == 'n' {
		// The only JSON value starting with n: null decodes into a
		// struct without error.
		return nil, notAnObject("null")
	}
	if err := conf.validateVersion(); err != nil {
		return nil, err
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
			return nil, types.NewError(codeDecode, fmt.Sprintf("invalid prevResult: %v", err), "")
		}
	}
	if err := conf.validateTop(); err != nil {
		return nil, err
	}
	origHost := conf.Host
	if err := conf.Host.normalizeHost(); err != nil {
		return nil, err
	}
	if err := conf.deriveContainer(origHost); err != nil {
		return nil, err
	}
	return conf, nil
}

// decodeError turns a JSON error into a CNI decoding error that names the
// field where the JSON library can tell.
func decodeError(err error) *types.Error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return notAnObject(typeErr.Value)
		}
		return types.NewError(codeDecode, fmt.Sprintf("invalid %s: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value), "")
	}
	return types.NewError(codeDecode, fmt.Sprintf("malformed network configuration: %v", err), "")
}

func (c *NetConf) validateVersion() error {
	if c.CNIVersion == "" {
		// The spec's oldest behaviour: no version means 0.1.0, which we do
		// not implement; name the field so the fix is obvious.
		return types.NewError(types.ErrIncompatibleCNIVersion, `missing cniVersion (supported: `+strings.Join(SupportedVersions, ", ")+`)`, "")
	}
	for _, v := range SupportedVersions {
		if c.CNIVersion == v {
			return nil
		}
	}
	return types.NewError(types.ErrIncompatibleCNIVersion,
		fmt.Sprintf("unsupported cniVersion %q (supported: %s)", c.CNIVersion, strings.Join(SupportedVersions, ", ")), "")
}

var logLevels = map[string]bool{"": true, "panic": true, "error": true, "warning": true, "info": true, "debug": true, "verbose": true}

func (c *NetConf) validateTop() error {
	if c.Type != "" && c.Type != "userspace" {
		return fieldError("type", c.Type, `this plugin is "userspace"`)
	}
	if t := c.IPAM.Type; t != "" {
		// An IPAM plugin is a binary found in CNI_PATH by this name. This
		// plugin is not one: as its own IPAM it would call itself forever.
		if t == "userspace" {
			return fieldError("ipam.type", t, "the userspace plugin cannot be its own IPAM plugin")
		}
		if !isPortableName(t, 255) {
			return fieldError("ipam.type", t, "must be the file name of an IPAM plugin in CNI_PATH")
		}
	}
	if !logLevels[c.LogLevel] {
		return fieldError("logLevel", c.LogLevel, "must be one of panic, error, warning, info, debug, verbose")
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > MaxMTU) {
		return fieldError("mtu", c.MTU, fmt.Sprintf("must be between 68 and %d", MaxMTU))
	}
	for _, m := range []struct{ field, value string }{
		{"mac", c.MAC}, {"runtimeConfig.mac", c.RuntimeConfig.MAC}, {"args.cni.mac", c.Args.CNI.MAC},
	} {
		if m.value == "" {
			continue
		}
		if err := ValidateMAC(m.value); err != nil {
			return fieldError(m.field, m.value, err.Error())
		}
	}
	return nil
}

// ValidateMAC accepts a unicast 48-bit MAC address.
func ValidateMAC(s string) error {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return errors.New("not a MAC address")
	}
	if len(hw) != 6 {
		return errors.New("not a 48-bit MAC address")
	}
	if hw[0]&1 != 0 {
		return errors.New("a multicast address cannot be an interface's address")
	}
	return nil
}

// MACFor returns the MAC the attachment should publish: the runtime's
// capability first, then the pod's cni-args, then CNI_ARGS, then the
// configuration's; empty when none is set.
func (c *NetConf) MACFor(args *Args) string {
	for _, m := range []string{c.RuntimeConfig.MAC, c.Args.CNI.MAC, args.MAC, c.MAC} {
		if m != "" {
			return m
		}
	}
	return ""
}

// The name checks are written out rather than as regular expressions: a
// bounded repetition like {0,63} compiles to a large program, and compiling
// it at start-up cost every invocation a quarter of a millisecond.

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isPortableName: a letter or digit, then up to max-1 letters, digits, '.',
// '_' or '-'. Socket file names (nothing a shell or a regular expression
// would treat specially) and OVS bridge names (netdevs: at most 15 bytes).
func isPortableName(s string, max int) bool {
	if len(s) == 0 || len(s) > max || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// isGroup: a numeric gid (1-10 digits), or a group name: a lower-case
// letter or '_', then up to 31 lower-case letters, digits, '_' or '-', and
// an optional final '$'.
func isGroup(s string) bool {
	if s == "" {
		return false
	}
	if s[0] >= '0' && s[0] <= '9' {
		if len(s) > 10 {
			return false
		}
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	name := strings.TrimSuffix(s, "$")
	if len(name) == 0 || len(name) > 32 || !(name[0] >= 'a' && name[0] <= 'z' || name[0] == '_') {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateSocketfile checks a socket file name taken from the configuration.
func ValidateSocketfile(name string) error {
	if strings.Contains(name, "/") || strings.Contains(name, "..") {
		return errors.New(`must be a file name without "/" or ".."`)
	}
	if !isPortableName(name, 64) {
		return errors.New("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// normalizeHost validates the host side and fills its defaults.
func (h *UserSpaceConf) normalizeHost() error {
	switch h.Engine {
	case EngineOVSDPDK, EngineVPP:
	case "":
		return types.NewError(codeInvalid, `missing host.engine (one of "ovs-dpdk", "vpp")`, "")
	default:
		return fieldError("host.engine", h.Engine, `must be "ovs-dpdk" or "vpp"`)
	}
	switch h.IfType {
	case IfTypeVhostUser, IfTypeMemif:
	case "":
		return types.NewError(codeInvalid, `missing host.iftype (one of "vhostuser", "memif")`, "")
	default:
		return fieldError("host.iftype", h.IfType, `must be "vhostuser" or "memif"`)
	}
	switch h.NetType {
	case "":
		h.NetType = NetTypeBridge
	case NetTypeBridge, NetTypeInterface, NetTypeNone:
	default:
		return fieldError("host.netType", h.NetType, `must be "bridge", "interface" or "none"`)
	}
	if err := h.validateCommon("host"); err != nil {
		return err
	}
	if h.IfType == IfTypeVhostUser && h.Vhost.Mode == "" {
		// The original's default: the switch is the vhost-user server.
		h.Vhost.Mode = VhostServer
	}
	if h.IfType == IfTypeMemif {
		if h.Memif.Role == "" {
			h.Memif.Role = MemifMaster
		}
		if h.Memif.Mode == "" {
			h.Memif.Mode = MemifEthernet
		}
	}
	switch h.Engine {
	case EngineOVSDPDK:
		return h.normalizeOVS()
	case EngineVPP:
		return h.normalizeVPP()
	}
	return nil
}

// validateCommon checks the fields both sides share.
func (s *UserSpaceConf) validateCommon(side string) error {
	switch s.Vhost.Mode {
	case "", VhostClient, VhostServer:
	default:
		return fieldError(side+".vhost.mode", s.Vhost.Mode, `must be "client" or "server"`)
	}
	switch s.Memif.Role {
	case "", MemifMaster, MemifSlave:
	default:
		return fieldError(side+".memif.role", s.Memif.Role, `must be "master" or "slave"`)
	}
	switch s.Memif.Mode {
	case "", MemifEthernet, MemifIP, MemifInjectPunt:
	default:
		return fieldError(side+".memif.mode", s.Memif.Mode, `must be "ethernet", "ip" or "inject-punt"`)
	}
	// In a fixed order, so that the field an error names is the same on
	// every run.
	for _, f := range []struct{ field, name string }{
		{side + ".vhost.socketfile", s.Vhost.Socketfile}, {side + ".memif.socketfile", s.Memif.Socketfile},
	} {
		if f.name == "" {
			continue
		}
		if err := ValidateSocketfile(f.name); err != nil {
			return fieldError(f.field, f.name, err.Error())
		}
	}
	if err := s.Memif.Validate(side + ".memif"); err != nil {
		return err
	}
	if g := s.Vhost.Group; g != "" {
		// A gid outside 32 bits would wrap around in chown (4294967297
		// is gid 1, 4294967296 root): refused here, before anything is
		// touched. A name is resolved on the node when ADD lays out the
		// socket directory.
		if _, numeric, err := ParseGID(g); err != nil {
			return fieldError(side+".vhost.group", g, err.Error())
		} else if !numeric && !isGroup(g) {
			return fieldError(side+".vhost.group", g, "must be a group name or a numeric gid")
		}
	}
	if s.Bridge.BridgeID < 0 {
		return fieldError(side+".bridge.bridgeId", s.Bridge.BridgeID, "must not be negative")
	}
	if s.Bridge.VlanID < 0 || s.Bridge.VlanID > 4095 {
		return fieldError(side+".bridge.vlanId", s.Bridge.VlanID, "must be between 0 and 4095")
	}
	return nil
}

// Validate checks the memif extensions against the limits of VPP's API
// (the values reach narrower integer types there); prefix names the field.
func (m *MemifConf) Validate(prefix string) error {
	if r := m.RingSize; r != 0 && (r < 2 || r > MaxMemifRingSize || r&(r-1) != 0) {
		return fieldError(prefix+".ringSize", r, fmt.Sprintf("must be a power of two between 2 and %d", MaxMemifRingSize))
	}
	if b := m.BufferSize; b < 0 || b > MaxMemifBufferSize {
		return fieldError(prefix+".bufferSize", b, fmt.Sprintf("must be between 0 and %d", MaxMemifBufferSize))
	}
	if q := m.Queues; q < 0 || q > MaxMemifQueues {
		return fieldError(prefix+".queues", q, fmt.Sprintf("must be between 0 and %d", MaxMemifQueues))
	}
	if len(m.Secret) > MaxMemifSecret {
		return fieldError(prefix+".secret", fmt.Sprintf("(%d bytes)", len(m.Secret)), fmt.Sprintf("must be at most %d bytes", MaxMemifSecret))
	}
	for _, c := range m.Secret {
		if c < 0x21 || c > 0x7e {
			return fieldError(prefix+".secret", "(hidden)", "must be printable ASCII without spaces")
		}
	}
	if m.MAC != "" {
		if err := ValidateMAC(m.MAC); err != nil {
			return fieldError(prefix+".mac", m.MAC, err.Error())
		}
	}
	return nil
}

func (h *UserSpaceConf) normalizeOVS() error {
	if h.IfType != IfTypeVhostUser {
		return fieldError("host.iftype", h.IfType, `engine "ovs-dpdk" supports only "vhostuser"`)
	}
	if h.NetType != NetTypeBridge {
		return fieldError("host.netType", h.NetType, `engine "ovs-dpdk" attaches ports to a bridge: use "bridge" or leave it unset`)
	}
	if h.Bridge.BridgeName == "" {
		h.Bridge.BridgeName = DefaultOVSBridge
	}
	if !isPortableName(h.Bridge.BridgeName, 15) {
		return fieldError("host.bridge.bridgeName", h.Bridge.BridgeName, "not a valid OVS bridge name (1-15 letters, digits, '.', '_' or '-')")
	}
	if h.OVSDBSocket != "" {
		if _, err := OVSDBPath(h.OVSDBSocket); err != nil {
			return fieldError("host.ovsdbSocket", h.OVSDBSocket, err.Error())
		}
	}
	return nil
}

func (h *UserSpaceConf) normalizeVPP() error {
	if h.VPPAPISocket != "" && !filepath.IsAbs(h.VPPAPISocket) {
		return fieldError("host.vppApiSocket", h.VPPAPISocket, "must be an absolute path")
	}
	if h.OVSDBSocket != "" {
		return fieldError("host.ovsdbSocket", h.OVSDBSocket, `applies only to engine "ovs-dpdk"`)
	}
	if h.NetType != NetTypeBridge {
		return nil
	}
	if _, err := h.BridgeDomainID(); err != nil {
		return err
	}
	return nil
}

// MaxBridgeDomain is the largest bridge domain id VPP accepts: it keeps
// them in 24 bits, the VXLAN VNI range (L2_BD_ID_MAX).
const MaxBridgeDomain = 1<<24 - 1

// BridgeDomainID returns the VPP bridge domain of the host side: the numeric
// bridgeName, else the deprecated bridgeId. ADD and DEL both use this, so
// they always agree (the original read different fields on ADD and DEL).
func (h *UserSpaceConf) BridgeDomainID() (uint32, error) {
	outOfRange := fmt.Sprintf("must be between 1 and %d (VPP's largest bridge domain id)", MaxBridgeDomain)
	if name := h.Bridge.BridgeName; name != "" {
		if name[0] < '0' || name[0] > '9' {
			return 0, fieldError("host.bridge.bridgeName", name, "engine \"vpp\" needs a numeric bridge domain id")
		}
		id, err := strconv.ParseUint(name, 10, 64)
		var numErr *strconv.NumError
		switch {
		case errors.As(err, &numErr) && errors.Is(numErr.Err, strconv.ErrRange):
			return 0, fieldError("host.bridge.bridgeName", name, outOfRange)
		case err != nil:
			return 0, fieldError("host.bridge.bridgeName", name, "engine \"vpp\" needs a numeric bridge domain id")
		case id == 0:
			return 0, fieldError("host.bridge.bridgeName", name, "bridge domain 0 is VPP's default domain and cannot be used")
		case id > MaxBridgeDomain:
			return 0, fieldError("host.bridge.bridgeName", name, outOfRange)
		}
		return uint32(id), nil
	}
	if h.Bridge.BridgeID <= 0 {
		return 0, fieldError("host.bridge.bridgeId", h.Bridge.BridgeID, "engine \"vpp\" with netType \"bridge\" needs a bridge domain id above 0 (bridge.bridgeName or bridge.bridgeId)")
	}
	if h.Bridge.BridgeID > MaxBridgeDomain {
		return 0, fieldError("host.bridge.bridgeId", h.Bridge.BridgeID, outOfRange)
	}
	return uint32(h.Bridge.BridgeID), nil
}

// OVSDBPath extracts the unix socket path from an OVSDB endpoint.
func OVSDBPath(endpoint string) (string, error) {
	p := strings.TrimPrefix(endpoint, "unix:")
	if !strings.HasPrefix(p, "/") {
		return "", errors.New(`must be a unix socket: "unix:/path" or "/path"`)
	}
	return p, nil
}

// deriveContainer fills the container side from the host side: roles and
// modes are the inverse, the rest is copied. Explicit container values that
// contradict the host are refused: both ends as servers never connect.
func (c *NetConf) deriveContainer(origHost UserSpaceConf) error {
	h, ct := &c.Host, &c.Container
	if err := ct.validateCommon("container"); err != nil {
		return err
	}
	switch ct.Engine {
	case "":
		ct.Engine = h.Engine
	case EngineOVSDPDK, EngineVPP:
	default:
		return fieldError("container.engine", ct.Engine, `must be "ovs-dpdk" or "vpp"`)
	}
	switch ct.IfType {
	case "":
		ct.IfType = h.IfType
	case h.IfType:
	default:
		return fieldError("container.iftype", ct.IfType, fmt.Sprintf("must match host.iftype %q", h.IfType))
	}
	switch ct.NetType {
	case "":
		ct.NetType = origHost.NetType
	case NetTypeBridge, NetTypeInterface, NetTypeNone:
	default:
		return fieldError("container.netType", ct.NetType, `must be "bridge", "interface" or "none"`)
	}
	if ct.Bridge == (BridgeConf{}) {
		ct.Bridge = origHost.Bridge
	}
	switch h.IfType {
	case IfTypeVhostUser:
		want := VhostClient
		if h.Vhost.Mode == VhostClient {
			want = VhostServer
		}
		if ct.Vhost.Mode == "" {
			ct.Vhost.Mode = want
		} else if ct.Vhost.Mode != want {
			return fieldError("container.vhost.mode", ct.Vhost.Mode, fmt.Sprintf("must be the opposite of host.vhost.mode %q", h.Vhost.Mode))
		}
		if ct.Vhost.Socketfile != "" && h.Vhost.Socketfile != "" && ct.Vhost.Socketfile != h.Vhost.Socketfile {
			return fieldError("container.vhost.socketfile", ct.Vhost.Socketfile, fmt.Sprintf("must match host.vhost.socketfile %q", h.Vhost.Socketfile))
		}
		if ct.Vhost.Group == "" {
			ct.Vhost.Group = h.Vhost.Group
		}
	case IfTypeMemif:
		want := MemifSlave
		if h.Memif.Role == MemifSlave {
			want = MemifMaster
		}
		if ct.Memif.Role == "" {
			ct.Memif.Role = want
		} else if ct.Memif.Role != want {
			return fieldError("container.memif.role", ct.Memif.Role, fmt.Sprintf("must be the opposite of host.memif.role %q", h.Memif.Role))
		}
		if ct.Memif.Mode == "" {
			ct.Memif.Mode = h.Memif.Mode
		} else if ct.Memif.Mode != h.Memif.Mode {
			return fieldError("container.memif.mode", ct.Memif.Mode, fmt.Sprintf("must match host.memif.mode %q", h.Memif.Mode))
		}
		if ct.Memif.Socketfile != "" && h.Memif.Socketfile != "" && ct.Memif.Socketfile != h.Memif.Socketfile {
			return fieldError("container.memif.socketfile", ct.Memif.Socketfile, fmt.Sprintf("must match host.memif.socketfile %q", h.Memif.Socketfile))
		}
		if ct.Memif.Secret == "" {
			ct.Memif.Secret = h.Memif.Secret
		} else if h.Memif.Secret != "" && ct.Memif.Secret != h.Memif.Secret {
			return fieldError("container.memif.secret", "(hidden)", "must match host.memif.secret")
		}
		if ct.Memif.RingSize == 0 {
			ct.Memif.RingSize = h.Memif.RingSize
		}
		if ct.Memif.BufferSize == 0 {
			ct.Memif.BufferSize = h.Memif.BufferSize
		}
		if ct.Memif.Queues == 0 {
			ct.Memif.Queues = h.Memif.Queues
		}
	}
	return nil
}

// MaxGID is the largest gid vhost.group may name: chown takes 32 bits and
// reads 4294967295 as "no change".
const MaxGID = 1<<32 - 2

// ParseGID reads a numeric gid. numeric is false when group is not a
// decimal number (it is a group name); err is set for a number outside
// 0..MaxGID, which chown would truncate to 32 bits or take as "no change".
func ParseGID(group string) (gid int, numeric bool, err error) {
	if group == "" {
		return 0, false, nil
	}
	for i := 0; i < len(group); i++ {
		if group[i] < '0' || group[i] > '9' {
			return 0, false, nil
		}
	}
	n, err := strconv.ParseUint(group, 10, 64)
	if err != nil || n > MaxGID {
		return 0, true, fmt.Errorf("a gid must be between 0 and %d (%d means \"no change\" to chown)", MaxGID, MaxGID+1)
	}
	return int(n), true, nil
}
