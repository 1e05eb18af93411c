package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.fd.io/govpp/binapi/memclnt"

	"github.com/userspace-cni/userspace/pkg/vpp"
	"github.com/userspace-cni/userspace/pkg/vppapi"
	"github.com/userspace-cni/userspace/tests/testbed"
)

// vppConf is the notes' VPP example (memif master in bridge domain 4,
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

var (
	roundTripsRe = regexp.MustCompile(`roundTrips=(\d+)`)
	timingsRe    = regexp.MustCompile(`msg="(?:ADD|DEL) timings".*`)
	phaseRe      = regexp.MustCompile(`(\w+)=([0-9.]+(?:ns|µs|ms|s))`)
)

// vppPlugin runs the binary once and returns its wall time and the VPP API
// round trips it logged (connecting included).
func vppPlugin(verb, id string, stdin []byte) (time.Duration, int, error) {
	d, _, trips, err := vppPluginPhases(verb, id, stdin)
	return d, trips, err
}

// vppPluginPhases also returns where the time went, from the verb's debug
// timings (setup, lock, connect, attach or teardown, publish, ...).
func vppPluginPhases(verb, id string, stdin []byte) (time.Duration, map[string]time.Duration, int, error) {
	d, log, err := plugin(verb, id, stdin)
	trips := 0
	for _, m := range roundTripsRe.FindAllSubmatch(log, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		trips += n
	}
	phases := map[string]time.Duration{}
	if line := timingsRe.Find(log); line != nil {
		for _, m := range phaseRe.FindAllSubmatch(line, -1) {
			if v, err := time.ParseDuration(string(m[2])); err == nil {
				phases[string(m[1])] = v
			}
		}
	}
	return d, phases, trips, err
}

// vppAddDel adds and deletes one memif attachment per iteration and reports
// latencies, round trips and the phases of each verb ("rest" is what the
// phases do not cover: the process's start and exit).
func vppAddDel(b *testing.B, stdin []byte) samples {
	s := samples{}
	var addTrips, delTrips, n int
	for b.Loop() {
		id := testbed.SandboxID()
		for _, verb := range []string{"ADD", "DEL"} {
			d, phases, trips, err := vppPluginPhases(verb, id, stdin)
			if err != nil {
				b.Fatal(err)
			}
			name := strings.ToLower(verb)
			s.add(name, d)
			rest := d
			for ph, v := range phases {
				s.add(name+"-"+ph, v)
				rest -= v
			}
			s.add(name+"-rest", rest)
			if verb == "ADD" {
				addTrips += trips
			} else {
				delTrips += trips
			}
		}
		n++
	}
	s.report(b)
	b.ReportMetric(float64(addTrips)/float64(n), "add-roundtrips")
	b.ReportMetric(float64(delTrips)/float64(n), "del-roundtrips")
	return s
}

// BenchmarkVPPAddDel: one memif attachment's ADD and DEL against a real
// VPP 25.10, side by side with what bounds it and what a script would do:
//
//   - version-host-local: host-local's VERSION, the start of the smallest Go
//     CNI plugin (the floor of any plugin process); version-plugin: ours;
//   - connect: connecting to VPP's API socket and reading its message table
//     (in-process, no process start); roundtrip: one request and reply on an
//     open connection;
//   - vppctl: the same work as vppctl calls, as a script would do it;
//   - plugin-noipam: the plugin on an empty bridge domain, without IPAM to
//     measure the plugin itself; plugin-ipam: with host-local;
//   - the same with 200 attachments already in the bridge domain (the
//     original crashed at its 21st memif socket).
func BenchmarkVPPAddDel(b *testing.B) {
	b.Run("version-host-local", func(b *testing.B) { benchVersion(b, filepath.Join(filepath.Dir(bed.bin), "host-local")) })
	b.Run("version-plugin", func(b *testing.B) { benchVersion(b, bed.bin) })
	b.Run("connect", benchConnect)
	b.Run("roundtrip", benchRoundTrip)
	b.Run("vppctl", benchVppctl)
	var emptyP50 float64
	b.Run("plugin-noipam", func(b *testing.B) { emptyP50 = testbed.Percentile(vppAddDel(b, vppConf(""))["add"], 50) })
	b.Run("plugin-ipam", func(b *testing.B) { vppAddDel(b, vppConf("10.90.0.0/16")) })
	const existing = 200
	stdin := vppConf("")
	ids := make([]string, existing)
	for i := range ids {
		ids[i] = testbed.SandboxID()
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
	if st, err := bed.vpp.State(); err != nil || len(st.Memifs) != existing {
		b.Fatalf("VPP holds %d memifs (%v), want %d", len(st.Memifs), err, existing)
	}
	b.Run("200attachments-noipam", func(b *testing.B) {
		s := vppAddDel(b, stdin)
		if emptyP50 > 0 {
			b.ReportMetric(testbed.Percentile(s["add"], 50)/emptyP50, "add-p50-ratio-to-empty")
		}
	})
	b.Run("200attachments-ipam", func(b *testing.B) { vppAddDel(b, vppConf("10.91.0.0/16")) })
}

// benchVersion times a CNI binary's VERSION: process start and exit.
func benchVersion(b *testing.B, bin string) {
	s := samples{}
	for b.Loop() {
		d, _, err := testbed.RunPlugin(bin, []string{"CNI_COMMAND=VERSION"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.add("version", d)
	}
	s.report(b)
}

// benchConnect times what each plugin invocation pays before its first
// request: the API connection, VPP's message table and the compatibility
// check, then the disconnect.
func benchConnect(b *testing.B) {
	s := samples{}
	for b.Loop() {
		start := time.Now()
		e, err := vpp.Connect(context.Background(), vpp.Config{Socket: bed.vppSock, IfType: "memif"})
		if err != nil {
			b.Fatal(err)
		}
		e.Close()
		s.add("connect", time.Since(start))
	}
	s.report(b)
}

// benchRoundTrip times one request and its reply (control_ping) on an open
// connection.
func benchRoundTrip(b *testing.B) {
	ch, err := vppapi.Dial(context.Background(), bed.vppSock, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Disconnect()
	s := samples{}
	for b.Loop() {
		start := time.Now()
		if err := ch.SendRequest(&memclnt.ControlPing{}).ReceiveReply(&memclnt.ControlPingReply{}); err != nil {
			b.Fatal(err)
		}
		s.add("roundtrip", time.Since(start))
	}
	s.report(b)
}

// benchVppctl does one attachment's work as a script would with vppctl:
// create memif socket, create interface memif, set interface l2 bridge, set
// interface state up; then delete interface memif, delete memif socket.
func benchVppctl(b *testing.B) {
	s := samples{}
	dir := filepath.Join(bed.root, "shared")
	id := 1000
	for b.Loop() {
		id++
		name := fmt.Sprintf("memif%d/0", id)
		sid := strconv.Itoa(id)
		start := time.Now()
		for _, cmd := range [][]string{
			{"create", "memif", "socket", "id", sid, "filename", filepath.Join(dir, "vppctl-"+sid+".sock")},
			{"create", "interface", "memif", "socket-id", sid, "id", "0", "master"},
			{"set", "interface", "l2", "bridge", name, "4"},
			{"set", "interface", "state", name, "up"},
		} {
			if _, err := bed.vpp.Vppctl(cmd...); err != nil {
				b.Fatal(err)
			}
		}
		s.add("add", time.Since(start))
		start = time.Now()
		for _, cmd := range [][]string{
			{"delete", "interface", "memif", name},
			{"delete", "memif", "socket", "id", sid},
		} {
			if _, err := bed.vpp.Vppctl(cmd...); err != nil {
				b.Fatal(err)
			}
		}
		s.add("del", time.Since(start))
	}
	s.report(b)
}

// BenchmarkVPPParallel runs 100 rounds of 8 concurrent memif ADDs into one
// bridge domain, then their DELs, and fails on any error (the original
// failed a third of them with duplicate socket ids). Run with -benchtime 1x.
func BenchmarkVPPParallel(b *testing.B) {
	const width, rounds = 8, 100
	stdin := vppConf("10.92.0.0/16")
	s := samples{}
	for range b.N {
		for range rounds {
			ids := make([]string, width)
			for i := range ids {
				ids[i] = testbed.SandboxID()
			}
			for _, verb := range []string{"ADD", "DEL"} {
				parallel(b, s, verb, ids, width, stdin)
			}
		}
		if st, err := bed.vpp.State(); err != nil || len(st.Memifs) != 0 {
			b.Fatalf("%d memifs left after the DELs (%v)", len(st.Memifs), err)
		}
	}
	s.report(b)
}
