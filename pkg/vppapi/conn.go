package vppapi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/api"
)

// Dial connects to VPP's API socket as client within ctx's deadline (5 s
// without one) and returns the connection, which is also its one channel
// (api.Channel), whose replies wait as long. One attempt; vppAPI, when not
// nil, replaces the socket client (tests).
func Dial(ctx context.Context, socket, client string, vppAPI adapter.VppAPI) (*Conn, error) {
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if vppAPI == nil {
		vppAPI = newSocketClient(socket, client, timeout)
	}
	c := newConn(vppAPI, timeout)
	done := make(chan error, 1)
	go func() { done <- vppAPI.Connect() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// Close the connection if it completes after all.
		go func() {
			if <-done == nil {
				c.Disconnect()
			}
		}()
		return nil, hung(socket, timeout, ctx.Err())
	}
	if err != nil {
		// The socket client's read deadline (the same timeout) may fire
		// before ctx's: the same hung VPP.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, hung(socket, timeout, err)
		}
		return nil, fmt.Errorf("connecting to VPP at %s: %w", socket, err)
	}
	if err := c.start(); err != nil {
		c.Disconnect()
		return nil, fmt.Errorf("VPP at %s is incompatible: %w", socket, err)
	}
	return c, nil
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
