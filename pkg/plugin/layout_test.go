package plugin_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func withGroup(g string) confMod {
	return func(c map[string]any) {
		c["host"].(map[string]any)["vhost"].(map[string]any)["group"] = g
	}
}

// TestAddGroupRefusedTouchesNothing: vhost.group is resolved (and a numeric
// one range-checked) before anything is created: an unknown group or a gid
// chown would truncate is a configuration error naming the field and the
// value, and ADD leaves no directory, record, port or address behind.
func TestAddGroupRefusedTouchesNothing(t *testing.T) {
	for _, group := range []string{"nosuchgroup", "4294967297", "4294967295"} {
		t.Run(group, func(t *testing.T) {
			e := newEnv(t)
			id := containerID("group-" + group)
			out, err := run(t, e.p.Add, e.args(id, "net1", e.conf("1.0.0", withGroup(group))))
			var ce *types.Error
			if !errors.As(err, &ce) || ce.Code != types.ErrInvalidNetworkConfig || !strings.Contains(ce.Msg, `host.vhost.group "`+group+`"`) {
				t.Fatalf("ADD = %v, want a configuration error naming host.vhost.group %q", err, group)
			}
			if out != "" || e.sw.opens != 0 || len(e.allocations("net1")) != 0 || exists(e.stateDir) || exists(e.shared) || exists(e.shortDir) {
				t.Errorf("a refused group touched something: stdout %q, opens %d, allocations %v", out, e.sw.opens, e.allocations("net1"))
			}
		})
	}
}
