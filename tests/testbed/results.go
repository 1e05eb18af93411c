package testbed

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// CNIError is the CNI error a plugin invocation failed with, found through
// any wrapping (libcni's and invoke's), or nil.
func CNIError(err error) *types.Error {
	var e *types.Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// WantCNIError fails the test unless err is a CNI error, and returns it.
func WantCNIError(t testing.TB, err error) *types.Error {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got success")
	}
	e := CNIError(err)
	if e == nil {
		t.Fatalf("expected a CNI error, got %T: %v", err, err)
	}
	return e
}

// Percentile is the p-th percentile of ds in milliseconds (nearest rank),
// 0 for no samples.
func Percentile(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := max(0, min((len(s)*p+99)/100-1, len(s)-1))
	return float64(s[i].Microseconds()) / 1000
}

// SeriesValue is the value of series (a metric's name with its labels, as
// printed) in a Prometheus text exposition, 0 if it is absent.
func SeriesValue(exposition, series string) float64 {
	for _, l := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
