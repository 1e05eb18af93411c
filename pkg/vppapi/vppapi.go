// Package vppapi holds the few helpers every user of VPP's binary API in
// the plugin needs: reading a dump to its end and recognising VPP's return
// values.
package vppapi

import (
	"errors"
	"fmt"

	"go.fd.io/govpp/api"
)

// IsRetval reports whether err is VPP's answer with the given return value.
func IsRetval(err error, retval int32) bool {
	var apiErr api.VPPApiError
	return errors.As(err, &apiErr) && int32(apiErr) == retval
}

// ReadDump reads a dump's details until govpp reports its end, handing each
// to add. D is the details message type; errors name the dump.
func ReadDump[D any, PD interface {
	*D
	api.Message
}](req api.MultiRequestCtx, dump string, add func(PD)) error {
	for {
		d := PD(new(D))
		last, err := req.ReceiveReply(d)
		if err != nil {
			return fmt.Errorf("%s: %w", dump, err)
		}
		if last {
			return nil
		}
		add(d)
	}
}
