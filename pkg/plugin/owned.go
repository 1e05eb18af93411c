package plugin

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/userspace-cni/userspace/pkg/sockdir"
	"github.com/userspace-cni/userspace/pkg/state"
)

// paths are the host paths one attachment creates files at: its socket,
// its config-data file, and the per-pod directories (the socket directory
// when it is the plugin's own, the notes' directory) its sandbox shares.
type paths struct {
	layout *sockdir.Layout
	cdFile string
	notes  *sockdir.Layout
}

// claims lists what the attachment (ifName set) or its sandbox (ifName
// empty) claims.
func (ps paths) claims(containerID, ifName string) []state.Claim {
	var out []state.Claim
	if ps.layout != nil {
		out = append(out, state.Claim{Path: ps.layout.SocketPath(), ContainerID: containerID, IfName: ifName})
		if ps.cdFile != "" {
			out = append(out, state.Claim{Path: filepath.Join(ps.layout.Dir, ps.cdFile), ContainerID: containerID, IfName: ifName})
		}
		if ps.layout.OwnDir {
			out = append(out, state.Claim{Path: ps.layout.Dir, ContainerID: containerID})
		}
	}
	if ps.notes != nil && ps.notes.OwnDir {
		out = append(out, state.Claim{Path: ps.notes.Dir, ContainerID: containerID})
	}
	return out
}

// claimAll takes every claim, or none: a path another live attachment owns
// is refused up front, naming that attachment, before anything is created.
func claimAll(store *state.Store, ps paths, containerID, ifName string) error {
	var taken []state.Claim
	for _, c := range ps.claims(containerID, ifName) {
		// A sandbox claim held already (another attachment of the pod) stays.
		had, err := store.Owns(c.Path, c.ContainerID, c.IfName)
		if err == nil {
			err = store.ClaimPath(c.Path, c.ContainerID, c.IfName)
		}
		if err != nil {
			for _, t := range taken {
				_ = store.ReleasePath(t.Path, t.ContainerID, t.IfName)
			}
			var conflict *state.ConflictError
			if errors.As(err, &conflict) {
				return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(
					"cannot attach container %s interface %s: %v; each attachment needs its own socket and files (check host.vhost.socketfile / host.memif.socketfile)",
					containerID, ifName, err), "")
			}
			return types.NewError(types.ErrIOFailure, fmt.Sprintf("claiming %s: %v", c.Path, err), "")
		}
		if !had {
			taken = append(taken, c)
		}
	}
	return nil
}

// releaseAll gives up the attachment's claims and, when the sandbox has no
// attachment left, the sandbox's. Sandbox claims are kept when the records
// cannot be listed: another attachment may still need them.
func releaseAll(log *slog.Logger, store *state.Store, ps paths, containerID, ifName string) error {
	var errs []error
	last := false
	if has, err := store.HasRecords(containerID); err != nil {
		log.Warn("cannot list the sandbox's records: its shared claims are kept", "error", err)
	} else {
		last = !has
	}
	for _, c := range ps.claims(containerID, ifName) {
		if c.IfName == "" && !last {
			continue
		}
		if err := store.ReleasePath(c.Path, c.ContainerID, c.IfName); errors.Is(err, state.ErrCorruptClaim) {
			// Not the plugin's writing, so not known to be this
			// attachment's: left for an operator, and no reason for a DEL
			// to fail on every retry.
			log.Warn("leaving a claim that cannot be read", "path", c.Path, "error", err)
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// owned is what of its paths an attachment owns, and may therefore remove.
type owned struct {
	socket, cdFile, dir, notes bool
	// lastOfSandbox: no other attachment of the sandbox remains, so what the
	// sandbox's attachments share (the short socket link) may go too.
	lastOfSandbox bool
}

// ownership works out what the attachment owns. A record written before
// claims existed (version 1) owns its paths by itself. A claim that cannot
// be read counts as another's: the file stays, and the log says why.
func ownership(log *slog.Logger, store *state.Store, ps paths, rec *state.Record, containerID, ifName string) owned {
	if rec != nil && rec.Version < 2 {
		return owned{socket: true, cdFile: true, dir: true, notes: true, lastOfSandbox: true}
	}
	owns := func(path, ifName string) bool {
		ok, err := store.Owns(path, containerID, ifName)
		if err != nil {
			log.Warn("cannot read the claim on a path: it is left as another attachment's", "path", path, "error", err)
		}
		return err == nil && ok
	}
	var o owned
	if ps.layout != nil {
		o.socket = owns(ps.layout.SocketPath(), ifName)
		o.cdFile = ps.cdFile != "" && owns(filepath.Join(ps.layout.Dir, ps.cdFile), ifName)
		o.dir = ps.layout.OwnDir && owns(ps.layout.Dir, "")
	}
	if ps.notes != nil {
		o.notes = ps.notes.OwnDir && owns(ps.notes.Dir, "")
	}
	// The attachment's own record may still be there while it is removed.
	names, err := store.IfNames(containerID)
	if err != nil {
		log.Warn("cannot list the sandbox's records: what its attachments share is kept", "error", err)
	}
	o.lastOfSandbox = err == nil && !slices.ContainsFunc(names, func(n string) bool { return n != ifName })
	return o
}
