package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestPreprocessStdin(t *testing.T) {
	big := `{"cniVersion":"1.0.0","type":"userspace","x":"` + strings.Repeat("a", 1<<20) + `"}`
	for _, in := range []string{`{"cniVersion":"0.3.0"}`, big} {
		r, err := preprocessStdin(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(r)
		r.Close()
		if err != nil || !strings.Contains(string(out), `"name":"userspace"`) || len(out) < len(in) {
			t.Errorf("stdin for skel: %d bytes, %v", len(out), err)
		}
	}
	for _, in := range []string{`null`, `1`, `"x"`, `[]`, `true`, ``} {
		r, err := preprocessStdin(strings.NewReader(in))
		var e *types.Error
		if r != nil || !errors.As(err, &e) || e.Code != types.ErrDecodingFailure {
			t.Errorf("%q: got %v, %v; want a CNI decoding error", in, r, err)
		}
	}
	if _, err := preprocessStdin(failingReader{}); err == nil || asCNIError(err).Code != types.ErrIOFailure {
		t.Errorf("unreadable stdin: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("broken pipe") }
