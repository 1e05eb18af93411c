package plugin

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// Check verifies the attachment is still as ADD left it: the record, the
// switch port (type, socket, bridge, applied by the switch), the config
// data, the prevResult's interface, and the IPAM allocation.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	inv, ctx, end, err := p.begin(args)
	if err != nil {
		return err
	}
	defer end()

	if inv.conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs prevResult", "")
	}
	prev, err := types100.NewResultFromResult(inv.conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("invalid prevResult: %v", err), "")
	}
	found := false
	for _, i := range prev.Interfaces {
		if i.Name == args.IfName && (i.Sandbox == "" || i.Sandbox == args.Netns) {
			found = true
		}
	}
	if !found {
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("prevResult has no interface %q in sandbox %q", args.IfName, args.Netns), "")
	}

	rec, err := inv.store.Load(args.ContainerID, args.IfName)
	if err != nil {
		return asCNIError(err, "CHECK")
	}
	if rec == nil {
		return types.NewError(types.ErrInternal, fmt.Sprintf("no record of container %s interface %s: it was never added or was deleted", args.ContainerID, args.IfName), "")
	}
	if rec.Incomplete {
		return types.NewError(types.ErrInternal, fmt.Sprintf("the ADD of container %s interface %s did not complete", args.ContainerID, args.IfName), "")
	}
	if rec.Deleting {
		return types.NewError(types.ErrInternal, fmt.Sprintf("the DEL of container %s interface %s has begun", args.ContainerID, args.IfName), "")
	}
	if rec.ConfigDataFile != "" && !rec.Layout.Exists(rec.ConfigDataFile) {
		return types.NewError(types.ErrInternal, fmt.Sprintf("config data %s/%s is missing", rec.Layout.Dir, rec.ConfigDataFile), "")
	}

	eng, err := p.OpenEngine(ctx, inv.conf, inv.pol, inv.log)
	if err != nil {
		return asCNIError(err, "connecting to the switch")
	}
	defer eng.Close()
	att := attachment(inv, rec.Layout)
	if err := eng.Check(ctx, att, rec.EngineData); err != nil {
		return asCNIError(err, "CHECK")
	}
	if c := inv.ipam("CHECK"); c != nil {
		if err := c.run(ctx); err != nil {
			return err
		}
	}
	return nil
}
