package plugin

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/userspace-cni/userspace/pkg/configdata"
	"github.com/userspace-cni/userspace/pkg/netconf"
	"github.com/userspace-cni/userspace/pkg/sockdir"
)

// notesLayout is the per-pod directory of the notes' VPP layout, or nil when
// the attachment does not use that layout (another engine, a sharedDir or
// the pod's volume).
func notesLayout(inv *invocation, pc *podContext) (*sockdir.Layout, error) {
	if inv.conf.Host.Engine != netconf.EngineVPP || inv.conf.SharedDir != "" || pc != nil && pc.dir != "" {
		return nil, nil
	}
	l, err := sockdir.Plan(inv.pol, filepath.Join(configdata.DefaultVPPBase, inv.args.ContainerID), true, "")
	if err != nil {
		return nil, err
	}
	setUnlisted(l, configdata.DefaultVPPBase)
	return l, nil
}

// writeNotes writes the notes' files for one attachment and returns their
// names. The configuration's IPAM type is blanked, as the original did, so
// the pod side never runs IPAM again.
func writeNotes(l *sockdir.Layout, inv *invocation, socketName string, ipResult *types100.Result) ([]string, error) {
	conf := *inv.conf
	conf.IPAM.Type = ""
	conf.Container.SetSocketFile(socketName)
	remote, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", configdata.NotesRemoteFile(inv.args.IfName), err)
	}
	data, err := json.MarshalIndent(configdata.NotesAddData{ContainerID: inv.args.ContainerID, IfName: inv.args.IfName, IPResult: ipResult}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", configdata.NotesAddDataFile(inv.args.IfName), err)
	}
	var written []string
	for _, f := range []struct {
		name string
		data []byte
	}{{configdata.NotesRemoteFile(inv.args.IfName), remote}, {configdata.NotesAddDataFile(inv.args.IfName), data}} {
		if err := l.WriteFileAtomic(f.name, append(f.data, '\n')); err != nil {
			for _, w := range written {
				_ = l.RemoveFile(w)
			}
			return nil, err
		}
		written = append(written, f.name)
	}
	return written, nil
}
