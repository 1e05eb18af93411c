#!/usr/bin/env bash
# demo/pod.sh: what runs as PID 1 of each OVS pod of the demo (its own
# network, mount and PID namespaces; see demo/pods.go). It does what the
# container runtime does for the notes' pods, then runs the notes' command.
#
#   pod.sh HOSTNAME_FILE ROLE SANDBOX_ID FILE_PREFIX [PEER_MAC]
#
# Environment: DEMO_REPO, DEMO_BIN (dpdk-args), DEMO_L3FWD, DEMO_PKTGEN_MODE.
set -euo pipefail
hostname_file=$1 role=$2 sandbox_id=$3 prefix=$4 peer_mac=${5:-}
IFNAME=net1
PKTGEN_MAC=02:00:00:00:00:02
# l3fwd's LPM table routes 198.18.0.0/24 to port 0, the only port, so the
# packets go back out the way they came in.
TX_IPS=198.18.0.1,198.18.0.2

# quote prints a command line the way a user would type it.
quote() {
	local a out=()
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
	done
	printf '%s' "${out[*]}"
}

# The pods' hostPath volume: /var/lib/cni/vhostuser at /vhu.
mount --rbind /var/lib/cni/vhostuser /vhu
# The sandbox's hostname file, as containerd mounts it into every container:
# get-prefix.sh finds the sandbox id in its source path.
mount --bind "$hostname_file" /etc/hostname
# The notes copy the script to /var/lib/cni/vhostuser/ and run
# /vhu/get-prefix.sh; the demo runs it from the repository so that it writes
# nothing into that shared host directory.
id=$("$DEMO_REPO/deploy/get-prefix.sh")
echo "pod\$ ID=\$(get-prefix.sh)   # $id"
[[ $id == "$sandbox_id" ]] || { echo "pod: get-prefix.sh printed $id, the sandbox is $sandbox_id" >&2; exit 1; }

case $role in
l3fwd)
	# The notes' l3fwd command: the socket path built from ${ID}.
	cmd=("$DEMO_L3FWD" -l 0 --no-huge -m 256 --no-pci --file-prefix="$prefix"
		--vdev="virtio_user0,path=/vhu/${id}/${id:0:12}-$IFNAME"
		-- -p 0x1 --config="(0,0,0)" --eth-dest="0,$PKTGEN_MAC" --parse-ptype)
	;;
pktgen)
	# The pktgen stand-in: dpdk-testpmd, its port found by dpdk-args from
	# the config data the plugin published next to the socket.
	app=(dpdk-testpmd --no-pci --no-huge -m 256 "--lcores=0@0,1@0" --file-prefix="$prefix"
		-- --forward-mode="$DEMO_PKTGEN_MODE" --auto-start --total-num-mbufs=8192 --stats-period=1)
	case $DEMO_PKTGEN_MODE in
	txonly) app+=(--eth-peer="0,$peer_mac" --tx-ip="$TX_IPS") ;;
	flowgen) app+=(--flowgen-flows=1) ;;
	esac
	echo "pod\$ $(quote dpdk-args -dir "/vhu/$id")"
	echo "pod> $("$DEMO_BIN/dpdk-args" -q -dir "/vhu/$id")"
	cmd=("$DEMO_BIN/dpdk-args" -dir "/vhu/$id" exec -- "${app[@]}")
	;;
*) echo "unknown pod role $role" >&2; exit 1 ;;
esac
echo "pod\$ $(quote "${cmd[@]}")"
exec "${cmd[@]}"
