// Package cnitest holds assertions the packages' unit tests share.
package cnitest

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// CheckError asserts err is a *types.Error with code whose message
// contains every one of subs.
func CheckError(t testing.TB, err error, code uint, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want CNI error %d mentioning %q", code, subs)
	}
	e, ok := err.(*types.Error)
	if !ok {
		t.Fatalf("error %v is a %T, want *types.Error", err, err)
	}
	if e.Code != code {
		t.Errorf("error code = %d, want %d (msg %q)", e.Code, code, e.Msg)
	}
	for _, s := range subs {
		if !strings.Contains(e.Msg, s) {
			t.Errorf("error message %q does not mention %q", e.Msg, s)
		}
	}
}
