package bench

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// vppConf is the published VPP example (memif master in bridge domain 4,
// host-local IPAM unless subnet is empty) with its sockets under the bench's
// shared directory, at debug level so each invocation reports its VPP API
// round trips.
func vppConf(subnet string) []byte {
	ipam := ""
	if subnet != "" {
		ipam = fmt.Sprintf(`, "ipam": {"type": "host-local", "subnet": %q, "dataDir": %q}`, subnet, filepath.Join(bed.root, "ipam"))
	}
	return fmt.Appendf(nil, `{"cniVersion": "1.0.0", "name": "memif-bench", "type": "userspace", "sharedDir": %q, "logLevel": "debug",
 "host": {"engine": "vpp", "iftype": "memif", "netType": "bridge", "memif": {"role": "master", "mode": "ethernet"}, "bridge": {"bridgeId": 4}},
 "container": {"engine": "vpp", "iftype": "memif", "netType": "interface", "memif": {"role": "slave", "mode": "ethernet"}}%s}`,
		filepath.Join(bed.root, "shared"), ipam)
}

var roundTripsRe = regexp.MustCompile(`roundTrips=(\d+)`)

// vppPlugin runs the binary once and returns its wall time and the VPP API
// round trips it logged (connecting included).
func vppPlugin(verb, id string, stdin []byte) (time.Duration, int, error) {
	d, log, err := plugin(verb, id, stdin)
	trips := 0
	for _, m := range roundTripsRe.FindAllSubmatch(log, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		trips += n
	}
	return d, trips, err
}

// vppAddDel adds and deletes one memif attachment per iteration and reports
// latencies and round trips per verb.
func vppAddDel(b *testing.B, stdin []byte) samples {
	s := samples{}
	var addTrips, delTrips, n int
	for b.Loop() {
		id := newID()
		d, trips, err := vppPlugin("ADD", id, stdin)
		if err != nil {
			b.Fatal(err)
		}
		s.add("add", d)
		addTrips += trips
		d, trips, err = vppPlugin("DEL", id, stdin)
		if err != nil {
			b.Fatal(err)
		}
		s.add("del", d)
		delTrips += trips
		n++
	}
	s.report(b)
	b.ReportMetric(float64(addTrips)/float64(n), "add-roundtrips")
	b.ReportMetric(float64(delTrips)/float64(n), "del-roundtrips")
	return s
}

// BenchmarkVPPAddDel: one memif attachment's ADD and DEL against the VPP
// stand-in, on an empty bridge domain and with 200 attachments already in
// it (the original crashed at its 21st memif socket).
//
// The no-IPAM variants separate the plugin's own cost from host-local's,
// which grows with the allocations it holds (it looks an attachment up by
// reading every allocation file).
func BenchmarkVPPAddDel(b *testing.B) {
	b.Run("empty", func(b *testing.B) { vppAddDel(b, vppConf("10.90.0.0/16")) })
	b.Run("empty-noipam", func(b *testing.B) { vppAddDel(b, vppConf("")) })
	const existing = 200
	stdin := vppConf("10.91.0.0/16")
	ids := make([]string, existing)
	for i := range ids {
		ids[i] = newID()
		if _, _, err := vppPlugin("ADD", ids[i], stdin); err != nil {
			b.Fatalf("attachment %d of %d: %v", i+1, existing, err)
		}
	}
	defer func() {
		for _, id := range ids {
			if _, _, err := vppPlugin("DEL", id, stdin); err != nil {
				b.Error(err)
			}
		}
	}()
	if got := len(bed.vpp.Memifs()); got != existing {
		b.Fatalf("VPP holds %d memifs, want %d", got, existing)
	}
	b.Run("200attachments", func(b *testing.B) { vppAddDel(b, stdin) })
	b.Run("200attachments-noipam", func(b *testing.B) { vppAddDel(b, vppConf("")) })
}

// BenchmarkVPPParallel runs 8 concurrent memif ADDs into one bridge domain,
// then their DELs, and fails on any error (the original failed a third of
// them with duplicate socket ids). Run with -benchtime 1x or more.
func BenchmarkVPPParallel(b *testing.B) {
	const width = 8
	stdin := vppConf("10.92.0.0/16")
	s := samples{}
	for range b.N {
		ids := make([]string, width)
		for i := range ids {
			ids[i] = newID()
		}
		for _, verb := range []string{"ADD", "DEL"} {
			parallel(b, s, verb, ids, width, stdin)
		}
		if n := len(bed.vpp.Memifs()); n != 0 {
			b.Fatalf("%d memifs left after the DELs", n)
		}
	}
	s.report(b)
}
