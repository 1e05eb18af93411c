package testbed

import (
	"fmt"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

func TestCNIError(t *testing.T) {
	e := types.NewError(types.ErrTryAgainLater, "busy", "")
	if got := CNIError(fmt.Errorf("plugin failed: %w", fmt.Errorf("again: %w", e))); got != e {
		t.Errorf("CNIError through two wraps = %v", got)
	}
	if got := CNIError(fmt.Errorf("plain")); got != nil {
		t.Errorf("CNIError of a plain error = %v", got)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    int
		want float64
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0, 1}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("p%d = %v, want %v", c.p, got, c.want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("p50 of nothing is not 0")
	}
}

func TestSeriesValue(t *testing.T) {
	const exposition = `# HELP userspace_cni_restores_total Restores.
# TYPE userspace_cni_restores_total counter
userspace_cni_restores_total{engine="ovs-dpdk"} 3
userspace_cni_restores_total{engine="vpp"} 1.5 
userspace_cni_up 1
`
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`userspace_cni_restores_total{engine="ovs-dpdk"}`, 3},
		{`userspace_cni_restores_total{engine="vpp"}`, 1.5},
		{`userspace_cni_up`, 1},
		{`userspace_cni_restores_total`, 0},
		{`absent`, 0},
	} {
		if got := SeriesValue(exposition, c.series); got != c.want {
			t.Errorf("SeriesValue(%s) = %v, want %v", c.series, got, c.want)
		}
	}
}
