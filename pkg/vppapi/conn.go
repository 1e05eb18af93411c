package vppapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/adapter/socketclient"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/core"
)

// quietOnce sets govpp's loggers, which are package globals read by every
// connection's goroutines (one abandoned at a deadline keeps running), once.
var quietOnce sync.Once

// QuietLogs keeps govpp's logrus output off stderr: callers report errors
// themselves, with context.
func QuietLogs() {
	quietOnce.Do(func() {
		l := logrus.New()
		l.SetOutput(io.Discard)
		core.SetLogger(l)
		socketclient.SetLogger(l)
	})
}

// Dial connects to VPP's API socket as client within ctx's deadline (5 s
// without one) and opens a channel whose replies wait as long. One
// attempt; vppAPI, when not nil, replaces the socket client (tests).
func Dial(ctx context.Context, socket, client string, vppAPI adapter.VppAPI) (*core.Connection, api.Channel, error) {
	QuietLogs()
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if vppAPI == nil {
		sc := socketclient.NewVppClient(socket)
		sc.SetClientName(client)
		sc.SetConnectTimeout(timeout)
		vppAPI = sc
	}
	type result struct {
		c   *core.Connection
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := core.Connect(vppAPI)
		done <- result{c, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		// Close the connection if it completes after all.
		go func() {
			if r := <-done; r.c != nil {
				r.c.Disconnect()
			}
		}()
		return nil, nil, hung(socket, timeout, ctx.Err())
	}
	if r.err != nil {
		// The socket client's read deadline (the same timeout) may fire
		// before ctx's: the same hung VPP.
		if errors.Is(r.err, os.ErrDeadlineExceeded) {
			return nil, nil, hung(socket, timeout, r.err)
		}
		return nil, nil, fmt.Errorf("connecting to VPP at %s: %w", socket, r.err)
	}
	ch, err := r.c.NewAPIChannel()
	if err != nil {
		r.c.Disconnect()
		return nil, nil, fmt.Errorf("opening a VPP API channel on %s: %v", socket, err)
	}
	ch.SetReplyTimeout(timeout)
	return r.c, ch, nil
}

// hung is the error of a VPP that accepted the connection but did not
// answer in time (stopped, deadlocked or overloaded).
func hung(socket string, timeout time.Duration, err error) error {
	return fmt.Errorf("VPP at %s did not answer within %v while connecting (is it hung?): %w", socket, timeout.Round(time.Millisecond), err)
}

// CheckCompatible compares exactly the messages who uses with the table VPP
// sent at connect time, naming the ones VPP lacks or changed.
func CheckCompatible(ch api.Channel, socket, who string, msgs []api.Message) error {
	err := ch.CheckCompatiblity(msgs...)
	if err == nil {
		return nil
	}
	var cerr *api.CompatibilityError
	if errors.As(err, &cerr) {
		return fmt.Errorf("VPP at %s does not speak the API %s was built for (VPP 23.06 to 26.10): missing or changed messages: %s",
			socket, who, strings.Join(cerr.IncompatibleMessages, ", "))
	}
	return fmt.Errorf("checking VPP API compatibility at %s: %v", socket, err)
}
