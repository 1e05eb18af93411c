package testbed

import (
	"os"
	"strings"
	"testing"
)

// TestPatchL3fwd applies the demo's patch to the installed DPDK's l3fwd
// source: a new DPDK that moved the patched lines fails here, not in the
// demo's first build.
func TestPatchL3fwd(t *testing.T) {
	if err := EnsurePackages(L3fwdPackages()...); err != nil {
		t.Fatal(err)
	}
	code, err := os.ReadFile("/usr/share/dpdk/examples/l3fwd/main.c")
	if err != nil {
		t.Fatal(err)
	}
	got, err := patchL3fwd(code)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"rxq_conf.offloads = port_conf.rxmode.offloads & dev_info.rx_offload_capa;",
		"local_port_conf.rxmode.offloads &= dev_info.rx_offload_capa;\n\t\tlocal_port_conf.rx_adv_conf.rss_conf.rss_hf &=",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("patched main.c lacks %q", want)
		}
	}
	if _, err := patchL3fwd(got); err == nil {
		t.Error("patching twice succeeded; want an error (the first pattern no longer matches)")
	}
}
