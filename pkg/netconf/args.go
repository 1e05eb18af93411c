package netconf

import (
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// Args are the CNI_ARGS the plugin uses. Multus sends its own keys and then
// the runtime's again, so keys repeat; the legacy MAC and IP keys appear
// when a network selection asks for them. Unknown keys are ignored whether or
// not IgnoreUnknown is present: a delegate cannot know every runtime's keys.
type Args struct {
	PodNamespace        string
	PodName             string
	PodUID              string
	PodInfraContainerID string
	// MAC is the legacy per-pod MAC request.
	MAC string
	// IPs is the legacy per-pod address request (comma-separated in
	// CNI_ARGS); IPAM plugins read it from the environment themselves.
	IPs []string
}

// ParseArgs parses CNI_ARGS ("K=V;K=V"). A repeated key takes its last value,
// as the CNI library does. Values of the keys the plugin uses are validated.
func ParseArgs(s string) (*Args, error) {
	a := &Args{}
	if s == "" {
		return a, nil
	}
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue // a trailing or doubled separator is harmless
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("invalid CNI_ARGS pair %q: expected KEY=VALUE", pair), "")
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			a.PodNamespace = v
		case "K8S_POD_NAME":
			a.PodName = v
		case "K8S_POD_UID":
			a.PodUID = v
		case "K8S_POD_INFRA_CONTAINER_ID":
			a.PodInfraContainerID = v
		case "MAC":
			if err := ValidateMAC(v); err != nil {
				return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("invalid CNI_ARGS MAC %q: %v", v, err), "")
			}
			a.MAC = v
		case "IP":
			a.IPs = a.IPs[:0]
			for _, ip := range strings.Split(v, ",") {
				ip = strings.TrimSpace(ip)
				if net.ParseIP(ip) == nil {
					if _, _, err := net.ParseCIDR(ip); err != nil {
						return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("invalid CNI_ARGS IP %q: %q is not an IP address", v, ip), "")
					}
				}
				a.IPs = append(a.IPs, ip)
			}
		}
	}
	return a, nil
}
