// Package dpdkargs turns the attachments the plugin published into DPDK EAL
// arguments, so pod specs need no scripts that assemble socket paths.
package dpdkargs

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
)

// VDev is the --vdev value for one attachment as DPDK port n: virtio_user
// for vhost-user (server=1 when the app is the vhost-user server), net_memif
// for memif (the app's role, the socket as a file, not an abstract name).
func VDev(n int, a *configdata.Attachment) (string, error) {
	if err := kvSafe("socket path", a.SocketPath); err != nil {
		return "", fmt.Errorf("interface %s: %w", a.IfName, err)
	}
	mac := a.Config.Memif.MAC
	if mac == "" {
		mac = a.ResultMAC()
	}
	if mac != "" {
		if err := netconf.ValidateMAC(mac); err != nil {
			return "", fmt.Errorf("interface %s: MAC %q: %w", a.IfName, mac, err)
		}
	}
	var kv []string
	switch a.Config.IfType {
	case netconf.IfTypeVhostUser:
		kv = append(kv, "virtio_user"+strconv.Itoa(n), "path="+a.SocketPath)
		switch a.Config.Vhost.Mode {
		case netconf.VhostServer:
			kv = append(kv, "server=1")
		case netconf.VhostClient, "":
		default:
			return "", fmt.Errorf("interface %s: config.vhost.mode %q: must be %q or %q", a.IfName, a.Config.Vhost.Mode, netconf.VhostClient, netconf.VhostServer)
		}
	case netconf.IfTypeMemif:
		m := a.Config.Memif
		role := "client"
		switch m.Role {
		case netconf.MemifMaster:
			role = "server"
		case netconf.MemifSlave, "":
		default:
			return "", fmt.Errorf("interface %s: config.memif.role %q: must be %q or %q", a.IfName, m.Role, netconf.MemifMaster, netconf.MemifSlave)
		}
		kv = append(kv, "net_memif"+strconv.Itoa(n), "role="+role, "socket="+a.SocketPath, "socket-abstract=no")
		switch m.Mode {
		case netconf.MemifEthernet, "":
		default:
			// DPDK's memif PMD runs ethernet mode only: against an IP or
			// punt/inject peer every frame would be dropped.
			return "", fmt.Errorf("interface %s: config.memif.mode %q: DPDK's memif driver supports only %q", a.IfName, m.Mode, netconf.MemifEthernet)
		}
		if m.RingSize > 0 {
			if m.RingSize&(m.RingSize-1) != 0 {
				return "", fmt.Errorf("interface %s: config.memif.ringSize %d: not a power of two", a.IfName, m.RingSize)
			}
			// DPDK takes the ring size as its base-2 logarithm.
			kv = append(kv, "rsize="+strconv.Itoa(bits.TrailingZeros(uint(m.RingSize))))
		}
		if m.BufferSize > 0 {
			kv = append(kv, "bsize="+strconv.Itoa(m.BufferSize))
		}
		if m.Secret != "" {
			if err := kvSafe("config.memif.secret", m.Secret); err != nil {
				return "", fmt.Errorf("interface %s: %w", a.IfName, err)
			}
			kv = append(kv, "secret="+m.Secret)
		}
	default:
		return "", fmt.Errorf("interface %s: config.iftype %q: must be %q or %q", a.IfName, a.Config.IfType, netconf.IfTypeVhostUser, netconf.IfTypeMemif)
	}
	if mac != "" {
		kv = append(kv, "mac="+mac)
	}
	return strings.Join(kv, ","), nil
}

// kvSafe refuses values that would split DPDK's key=value,key=value device
// arguments or a shell word.
func kvSafe(field, v string) error {
	if i := strings.IndexFunc(v, func(r rune) bool { return r == ',' || r == '=' || r <= ' ' || r == 0x7f }); i >= 0 {
		return fmt.Errorf("%s %q: DPDK device arguments cannot carry %q", field, v, v[i])
	}
	return nil
}

// EAL returns one --vdev argument per attachment, ports numbered in order.
func EAL(atts []configdata.Attachment) ([]string, error) {
	out := make([]string, 0, len(atts))
	for i := range atts {
		v, err := VDev(i, &atts[i])
		if err != nil {
			return nil, err
		}
		out = append(out, "--vdev="+v)
	}
	return out, nil
}

// Insert puts eal into an app's command line: after the app's own EAL
// arguments, before the "--" that starts its application arguments.
func Insert(argv, eal []string) []string {
	if len(argv) == 0 {
		return nil
	}
	out := make([]string, 0, len(argv)+len(eal))
	out = append(out, argv[0])
	rest := argv[1:]
	i := 0
	for i < len(rest) && rest[i] != "--" {
		i++
	}
	out = append(out, rest[:i]...)
	out = append(out, eal...)
	return append(out, rest[i:]...)
}
