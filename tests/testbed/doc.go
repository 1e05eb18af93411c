// Package testbed starts real data-plane components on the local machine for
// integration tests, benchmarks and demos: a private OVS-DPDK (ovsdb-server +
// ovs-vswitchd-dpdk) in a temporary directory, a private VPP, dpdk-testpmd
// and l3fwd processes and other apps acting as "pod" applications, and named
// network namespaces. It also holds what the test suites share: the
// plugin's build and node policy (Prepare, OVS.NodePolicy, WritePolicy), and
// reading results (CNIError, Percentile).
//
// Everything runs without hugepages (--no-huge), without PCI devices and
// without the OVS kernel module, so it works in an unprivileged-hardware
// sandbox as root. Each component uses its own DPDK --file-prefix and its own
// directory so that several testbeds (or a system OVS) never collide, and
// every Stop method kills by PID, waits, and removes the DPDK runtime
// directory /var/run/dpdk/<prefix>.
//
// Typical use in a test:
//
//	o, err := testbed.StartOVS(testbed.OVSOptions{})
//	...
//	defer o.Stop()
//	o.Vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
//	o.Vsctl("add-port", "br0", "vhu1", "--", "set", "Interface", "vhu1",
//		"type=dpdkvhostuserclient", "options:vhost-server-path="+o.Dir+"/vhu1.sock")
//	rx, err := testbed.StartTestPMD(testbed.TestPMDOptions{
//		VDevs: []string{testbed.VhostUserVDev(0, o.Dir+"/vhu1.sock", true)}})
//	...
//	defer rx.Stop()
//	st, err := rx.WaitRx(1, time.Minute)
//
// Processes are polling (busy) DPDK threads: on a 2-vCPU machine the switch
// PMD and two testpmd processes share the CPUs, so tests should assert that
// packets arrive, never a rate.
package testbed
