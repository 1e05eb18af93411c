package plugin

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// Status reports whether the plugin can add attachments now: the switch is
// reachable and DPDK-capable, and the IPAM plugin is ready. Any failure is
// CNI error 50 (plugin not available).
func (p *Plugin) Status(args *skel.CmdArgs) error {
	inv, ctx, end, err := p.begin(args)
	if err != nil {
		return err
	}
	defer end()

	eng, err := p.OpenEngine(ctx, inv.conf, inv.pol, inv.log)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "switch unavailable: "+err.Error(), "")
	}
	defer eng.Close()
	if err := eng.Status(ctx); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	if c := inv.ipam("STATUS"); c != nil {
		if err := c.run(ctx); err != nil {
			return types.NewError(types.ErrPluginNotAvailable, "IPAM plugin "+inv.conf.IPAM.Type+" unavailable: "+err.Error(), "")
		}
	}
	return nil
}
