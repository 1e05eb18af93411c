#!/usr/bin/env bash
# demo/run.sh: the application notes' OVS-DPDK scenario (an l3fwd pod and a
# packet-generator pod on one vhost-user bridge) and VPP scenario in one command, on one
# machine, with no Kubernetes, no hugepages and no NIC. Run it as root:
#
#   sudo demo/run.sh
#
# It installs what is missing, builds the plugin and DPDK's l3fwd, starts a
# private OVS-DPDK, creates two "pods" (network, mount and PID namespaces, as
# a container runtime would), adds their attachments through the plugin
# exactly as Multus delegates, replays the notes' commands, shows packets
# crossing the switch both ways, deletes the attachments and checks that
# nothing is left. Then it runs the notes' VPP scenario the same way on a
# private host VPP (bridge domain 4) with two pods that each run their own
# VPP and vpp-app, and ping each other. Everything it starts it stops again,
# on success, failure and Ctrl-C, by process id. See demo/README.md.
#
# Environment knobs (all optional):
#   DEMO_PKTGEN_MODE  testpmd forwarding mode of the pktgen pod: txonly
#                     (default, the notes' packet generator: sends only, so
#                     l3fwd's packets back show at the switch) or flowgen
#                     (also drains its receive queue, so testpmd counts the
#                     return traffic itself).
#   DEMO_SAMPLES      number of counter samples (default 3), 5 s apart (OVS
#                     refreshes Interface statistics every 5 s).
#   DEMO_KEEP_LOGS    a directory to copy the switch's and the pods' logs to.
set -euo pipefail

SELF=$(readlink -f -- "${BASH_SOURCE[0]}")
REPO=$(dirname -- "$(dirname -- "$SELF")")
BIN=$REPO/bin

# The notes' layout: the host directory the pods mount at /vhu.
VHU_HOST=/var/lib/cni/vhostuser
VHU_POD=/vhu
# The notes' NetworkAttachmentDefinition config, with the name Multus injects.
NETCONF='{"cniVersion":"0.3.0","type":"userspace","name":"userspace-ovs-net-1","host":{"engine":"ovs-dpdk","iftype":"vhostuser"}}'
IFNAME=net1
# pktgen's MAC, requested the Multus way (the pod's network-selection
# annotation {"name": "userspace-ovs-net-1", "mac": "..."} becomes MAC= in
# CNI_ARGS); l3fwd sends its packets back to it.
PKTGEN_MAC=02:00:00:00:00:02
# l3fwd's LPM table routes 198.18.0.0/24 to port 0, the only port, so the
# packets go back out the way they came in.
TX_IPS=198.18.0.1,198.18.0.2

OVS_VSWITCHD=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
OVS_SCHEMA=/usr/share/openvswitch/vswitch.ovsschema
DEBS=(openvswitch-switch-dpdk dpdk-dev dpdk-doc libdpdk-dev pkg-config make gcc iproute2 util-linux jq xz-utils)

PKTGEN_MODE=${DEMO_PKTGEN_MODE:-txonly}
SAMPLES=${DEMO_SAMPLES:-3}

# ---------------------------------------------------------------- output --

if [[ -t 1 ]]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B='' G='' R='' N=''; fi
STEP=0

step() { STEP=$((STEP + 1)); printf '\n%s==> %d. %s%s\n' "$B" "$STEP" "$*" "$N"; }
say() { printf '    %s\n' "$*"; }
ok() { printf '    %sOK%s %s\n' "$G" "$N" "$*"; }
die() { printf '%sdemo failed:%s %s\n' "$R" "$N" "$*" >&2; exit 1; }

# quote prints a command line the way a user would type it.
quote() {
	local a out=()
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
	done
	printf '%s' "${out[*]}"
}

# show prints a command, then runs it.
show() { printf '    $ %s\n' "$(quote "$@")"; "$@"; }

indent() { sed 's/^/      /'; }

# nap sleeps in the background so that a signal interrupts it at once.
nap() { sleep "$1" & wait $! || true; }

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# ------------------------------------------------------------- pod side --
# The script runs itself as PID 1 of each pod's PID namespace (see
# start_pod). pod_main does what the container runtime does for every
# container of the notes' pods, then runs the notes' command.

pod_main() {
	local hostname_file=$1 role=$2 sandbox_id=$3 prefix=$4 peer_mac=${5:-} id
	# The pods' hostPath volume: /var/lib/cni/vhostuser at /vhu.
	mount --rbind "$VHU_HOST" "$VHU_POD"
	# The sandbox's hostname file, as containerd mounts it into every
	# container: get-prefix.sh finds the sandbox id in its source path.
	mount --bind "$hostname_file" /etc/hostname
	# The notes copy the script to /var/lib/cni/vhostuser/ and run
	# /vhu/get-prefix.sh; the demo runs it from the repository so that it
	# writes nothing into that shared host directory.
	id=$("$REPO/deploy/get-prefix.sh")
	echo "pod$ ID=\$(get-prefix.sh)   # $id"
	[[ $id == "$sandbox_id" ]] || { echo "pod: get-prefix.sh printed $id, the sandbox is $sandbox_id" >&2; exit 1; }

	local cmd
	case $role in
	l3fwd)
		# The notes' l3fwd command: the socket path built from ${ID}.
		cmd=("$L3FWD" -l 0 --no-huge -m 256 --no-pci --file-prefix="$prefix"
			--vdev="virtio_user0,path=$VHU_POD/${id}/${id:0:12}-$IFNAME"
			-- -p 0x1 --config="(0,0,0)" --eth-dest="0,$PKTGEN_MAC" --parse-ptype)
		;;
	pktgen)
		# The pktgen stand-in: dpdk-testpmd, its port found by dpdk-args
		# from the config data the plugin published next to the socket.
		local app=(dpdk-testpmd --no-pci --no-huge -m 256 "--lcores=0@0,1@0" --file-prefix="$prefix"
			-- --forward-mode="$PKTGEN_MODE" --auto-start --total-num-mbufs=8192 --stats-period=1)
		case $PKTGEN_MODE in
		txonly) app+=(--eth-peer="0,$peer_mac" --tx-ip="$TX_IPS") ;;
		flowgen) app+=(--flowgen-flows=1) ;;
		esac
		echo "pod$ $(quote dpdk-args -dir "$VHU_POD/$id")"
		echo "pod> $("$BIN/dpdk-args" -q -dir "$VHU_POD/$id")"
		cmd=("$BIN/dpdk-args" -dir "$VHU_POD/$id" exec -- "${app[@]}")
		;;
	*) echo "unknown pod role $role" >&2; exit 1 ;;
	esac
	echo "pod$ $(quote "${cmd[@]}")"
	exec "${cmd[@]}"
}

if [[ ${1:-} == __pod ]]; then
	shift
	L3FWD=${DEMO_L3FWD:-}
	pod_main "$@"
fi

# ------------------------------------------------------------ host side --

T=                      # the demo's private directory
CNI_PATH_DEMO=          # the plugin's and host-local's folders
RUN=                    # unique suffix for names and DPDK file prefixes
OVS_DIR=
OVS_NS=
CREATED_VHU=false
declare -A POD_ID=() POD_UID=() POD_NS=() POD_PID=() ADDED=()
PODS=(pktgen l3fwd)
NETNSES=()
PREFIXES=()
CLEANED=false

# Always a --timeout: without it ovs-vsctl waits forever for a switch that is down.
vsctl() { ovs-vsctl --timeout=5 --db="unix:$OVS_DIR/db.sock" "$@"; }

# show_vsctl prints an ovs-vsctl command in the short form a user types.
show_vsctl() { printf '    $ ovs-vsctl %s\n' "$(quote "$@")"; vsctl "$@"; }

# daemon_pid prints the PID in an OVS pidfile if that process still runs
# the daemon named (a stale pidfile never makes us kill a recycled PID).
daemon_pid() {
	local pidfile=$OVS_DIR/$1.pid pid exe
	{ read -r pid <"$pidfile"; } 2>/dev/null || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	[[ $(basename -- "$exe") == "$1"* ]] || return 1
	echo "$pid"
}

# children_of prints the PIDs whose parent is $1.
children_of() {
	local f key val
	for f in /proc/[0-9]*/status; do
		# A process may exit between the glob and the read.
		{ while read -r key val; do
			if [[ $key == PPid: ]]; then
				[[ $val == "$1" ]] && { f=${f#/proc/}; echo "${f%/status}"; }
				break
			fi
		done <"$f"; } 2>/dev/null || true
	done
}

# alive tells whether process $1 runs (a zombie, exited but not yet reaped
# by its parent, does not).
alive() {
	local stat
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# procs_of_run lists the live processes whose command line names this run
# (its temporary directory, namespaces and DPDK file prefixes all do).
procs_of_run() {
	local f pid cmd
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		{ cmd=$(tr '\0' ' ' <"$f"); } 2>/dev/null || continue
		[[ $cmd == *"usp-demo-$RUN"* ]] && alive "$pid" && printf '%s(%s) ' "$pid" "${cmd%% *}"
	done
	return 0
}

# terminate sends SIGTERM to the PIDs given, then SIGKILL to those still
# running after 5 s, and waits until they are gone.
terminate() {
	local pid i
	local -a left
	(($#)) || return 0
	kill -TERM "$@" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		left=()
		for pid in "$@"; do alive "$pid" && left+=("$pid"); done
		((${#left[@]})) || return 0
		sleep 0.05
	done
	kill -KILL "${left[@]}" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		left=()
		for pid in "$@"; do alive "$pid" && left+=("$pid"); done
		((${#left[@]})) || return 0
		sleep 0.05
	done
	echo "    processes ${left[*]} survived SIGKILL" >&2
	return 1
}

# stop_pod stops a pod's app (its PID-namespace init, which takes every other
# process of the pod with it) and the unshare wrapper, by PID.
stop_pod() {
	local pod=$1 upid=${POD_PID[$1]:-} kids
	[[ -n $upid ]] || return 0
	if alive "$upid"; then
		mapfile -t kids < <(children_of "$upid")
		terminate "${kids[@]}" || true
		terminate "$upid" || true
	fi
	wait "$upid" 2>/dev/null || true
	unset 'POD_PID[$pod]'
}

stop_ovs() {
	local pid
	for d in ovs-vswitchd ovsdb-server; do
		if pid=$(daemon_pid "$d"); then terminate "$pid" || true; fi
	done
}

# plugin runs the plugin for a pod as Multus delegates to it: verb, pod,
# network configuration (stdin) and the node policy it runs under.
plugin() {
	local verb=$1 pod=$2 conf=$3 policy=$4 args
	args="IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$pod;K8S_POD_INFRA_CONTAINER_ID=${POD_ID[$pod]};K8S_POD_UID=${POD_UID[$pod]}"
	[[ $pod == pktgen && $conf == "$NETCONF" ]] && args+=";MAC=$PKTGEN_MAC"
	env CNI_COMMAND="$verb" CNI_CONTAINERID="${POD_ID[$pod]}" CNI_NETNS="/var/run/netns/${POD_NS[$pod]}" \
		CNI_IFNAME="$IFNAME" CNI_PATH="$CNI_PATH_DEMO" CNI_ARGS="$args" USERSPACE_CNI_POLICY="$policy" \
		"$BIN/userspace" <<<"$conf"
}

cni() { plugin "$1" "$2" "$NETCONF" "$T/policy.json"; }

cleanup() {
	local rc=$? pod ns p left=()
	# Only the demo's own shell cleans up, never a subshell that exits.
	((BASHPID == $$)) || exit "$rc"
	trap '' INT TERM
	set +e
	# A trap runs with the redirections of the command it interrupted.
	exec 1>&3 2>&4
	$CLEANED && exit "$rc"
	CLEANED=true
	[[ -n $T ]] || exit "$rc"
	case $rc in
	0) step "Clean up" ;;
	130 | 143) step "Interrupted: clean up" ;;
	*) step "Clean up after the failure (exit status $rc)" ;;
	esac
	for pod in "${PODS[@]}"; do
		[[ -n ${POD_PID[$pod]:-} ]] && { say "stopping the $pod pod (pid ${POD_PID[$pod]})"; stop_pod "$pod"; }
	done
	for pod in "${PODS[@]}"; do
		if [[ -n ${ADDED[$pod]:-} ]]; then
			say "CNI DEL for the $pod pod (interrupted before the demo's own DEL)"
			cni DEL "$pod" >/dev/null 2>"$T/del-$pod.err" ||
				{ say "DEL failed:"; indent <"$T/del-$pod.err"; }
			unset 'ADDED[$pod]'
		fi
	done
	if ((${#VPP_PID[@]} + ${#VPP_ADDED[@]})); then
		say "stopping the VPPs (the pods' and the host's) and deleting their attachments"
		vpp_cleanup
	fi
	if [[ -n $OVS_DIR ]]; then
		say "stopping the private ovs-vswitchd and ovsdb-server"
		stop_ovs
	fi
	for p in "${PREFIXES[@]}"; do rm -rf -- "/var/run/dpdk/$p"; done
	for ns in "${NETNSES[@]}"; do ip netns delete "$ns" 2>/dev/null; done
	for pod in "${PODS[@]}"; do
		[[ -n ${POD_ID[$pod]:-} && -e $VHU_HOST/${POD_ID[$pod]} ]] && rm -rf -- "${VHU_HOST:?}/${POD_ID[$pod]}"
	done
	if $CREATED_VHU; then rmdir "$VHU_POD" 2>/dev/null; fi
	if [[ -n ${DEMO_KEEP_LOGS:-} ]]; then
		mkdir -p "$DEMO_KEEP_LOGS" && cp -f "$T"/*.log "$OVS_DIR"/*.log "$DEMO_KEEP_LOGS"/ 2>/dev/null
	fi
	rm -rf -- "$T"

	# Verify: nothing the demo started or created is left.
	local procs
	procs=$(procs_of_run)
	[[ -z $procs ]] || left+=("processes: $procs")
	for ns in "${NETNSES[@]}"; do [[ -e /var/run/netns/$ns ]] && left+=("netns $ns"); done
	for p in "${PREFIXES[@]}"; do [[ -e /var/run/dpdk/$p ]] && left+=("/var/run/dpdk/$p"); done
	compgen -G "/dev/shm/usp-demo-$RUN-*" >/dev/null && left+=("VPP shared memory: $(echo /dev/shm/usp-demo-"$RUN"-*)")
	grep -q "usp-demo-$RUN" /proc/self/mountinfo && left+=("mounts: $(grep "usp-demo-$RUN" /proc/self/mountinfo | awk '{print $5}' | tr '\n' ' ')")
	for pod in "${PODS[@]}"; do
		[[ -n ${POD_ID[$pod]:-} && -e $VHU_HOST/${POD_ID[$pod]} ]] && left+=("$VHU_HOST/${POD_ID[$pod]}")
	done
	[[ -e $T ]] && left+=("$T")
	if ((${#left[@]})); then
		printf '    %sleft behind:%s %s\n' "$R" "$N" "${left[*]}" >&2
		((rc)) || rc=1
	else
		ok "no process, namespace, mount, DPDK runtime dir, VPP shared memory, socket or temp dir of this run is left"
	fi
	if ((rc == 0)); then
		printf '\n%sDemo passed.%s\n' "$G" "$N"
	else
		printf '\n%sDemo failed (exit %d).%s\n' "$R" "$rc" "$N" >&2
	fi
	exit "$rc"
}

# wait_log waits until file $1 matches regex $2, failing if process $3 exits
# or $4 seconds pass.
wait_log() {
	local file=$1 re=$2 pid=$3 secs=$4 i
	for ((i = 0; i < secs * 10; i++)); do
		grep -aqE -- "$re" "$file" 2>/dev/null && return 0
		alive "$pid" || { echo "process exited; its output:"; tail -n 30 "$file"; return 1; }
		sleep 0.1
	done
	echo "no /$re/ after ${secs}s; output:"
	tail -n 30 "$file"
	return 1
}

# start_pod runs the notes' command for a pod inside its own network, mount
# and PID namespaces. The wrapper's PID is recorded for clean-up.
start_pod() {
	local pod=$1 peer_mac=${2:-} prefix=usp-demo-$RUN-$1
	PREFIXES+=("$prefix")
	say "$pod pod: netns ${POD_NS[$pod]}, new mount and PID namespaces, $VHU_HOST at $VHU_POD, the sandbox's hostname file at /etc/hostname"
	DEMO_L3FWD=$L3FWD nsenter --net="/var/run/netns/${POD_NS[$pod]}" -- \
		unshare --mount --pid --fork --mount-proc --kill-child -- \
		"$SELF" __pod "$T/io.containerd.grpc.v1.cri/sandboxes/${POD_ID[$pod]}/hostname" \
		"$pod" "${POD_ID[$pod]}" "$prefix" "$peer_mac" </dev/null >"$T/$pod.log" 2>&1 3>&- 4>&- &
	POD_PID[$pod]=$!
}

# iface_stat prints counter $2 of OVS Interface $1 (0 if not reported yet).
iface_stat() {
	local v
	v=$(vsctl get Interface "$1" "statistics:$2" 2>/dev/null) || v=0
	echo "${v//\"/}"
}

# dp_port prints the datapath port number of port $1.
dp_port() {
	ovs-appctl -t "$OVS_DIR/ovs-vswitchd.ctl" dpctl/show | grep -oE "port [0-9]+: $1( |\$)" | grep -oE '[0-9]+' | head -n 1
}

# dp_packets_from prints how many packets the datapath flows matching
# packets from datapath port $1 have counted.
dp_packets_from() {
	ovs-appctl -t "$OVS_DIR/ovs-vswitchd.ctl" dpctl/dump-flows |
		awk -v p="in_port($1)," 'index($0, p) && match($0, /packets:[0-9]+/) { n += substr($0, RSTART + 8, RLENGTH - 8) } END { print n + 0 }'
}

# testpmd_stat prints the latest value of field $1 (RX-packets, TX-packets)
# from testpmd's periodic port statistics.
testpmd_stat() {
	local v
	v=$(tail -c 65536 "$T/pktgen.log" | grep -aoE "$1: *[0-9]+" | tail -n 1 | grep -oE '[0-9]+$') || v=0
	echo "${v:-0}"
}

main() {
	if ((EUID != 0)); then
		echo "run me as root: the demo creates namespaces and starts a private OVS-DPDK" >&2
		exit 1
	fi
	local start=$SECONDS
	[[ $PKTGEN_MODE == flowgen || $PKTGEN_MODE == txonly ]] || die "DEMO_PKTGEN_MODE must be flowgen or txonly, not $PKTGEN_MODE"
	[[ $SAMPLES =~ ^[1-9][0-9]*$ ]] || die "DEMO_SAMPLES must be a positive number, not $SAMPLES"
	# Clean up on success, failure and Ctrl-C alike.
	exec 3>&1 4>&2
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	printf '%sThe userspace CNI plugin: the application notes'"'"' OVS-DPDK scenario (l3fwd + pktgen)%s\n' "$B" "$N"

	# ---- 1. packages and builds
	step "Install missing Debian packages"
	local p missing=()
	for p in "${DEBS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if ((${#missing[@]})); then
		show apt-get update -q
		DEBIAN_FRONTEND=noninteractive show apt-get install -y -q --no-install-recommends "${missing[@]}"
	else
		say "all present: ${DEBS[*]}"
	fi
	# sudo's secure_path drops /usr/local/go/bin, where Go's own installer puts it.
	command -v go >/dev/null || [[ ! -x /usr/local/go/bin/go ]] || PATH=$PATH:/usr/local/go/bin
	command -v go >/dev/null || die "Go is needed to build the plugin (see go.mod for the version)"

	T=$(mktemp -d /tmp/usp-demo-XXXXXX)
	RUN=${T##*-}

	step "Build the plugin, the pod-side helpers (dpdk-args, vpp-app) and host-local (the notes' VPP network's IPAM)"
	show make -s -C "$REPO" build
	# host-local is pinned in go.mod (a tool): built from the module proxy,
	# kept out of bin/. CNI_PATH names both folders.
	show go build -C "$REPO" -trimpath -o "$T/cni/host-local" github.com/containernetworking/plugins/plugins/ipam/host-local
	CNI_PATH_DEMO=$BIN:$T/cni

	step "Get a real VPP 25.10 (hack/vpp-assets.sh)"
	if [[ -z $VPP_DIR ]]; then
		say "an installed VPP, else the relocatable build in ../shared/vpp (seconds to unpack, once),"
		say "else a build from its source: 20 to 60 minutes the first time, with progress below; cached after"
		VPP_DIR=$("$REPO/hack/vpp-assets.sh") || die "no VPP for the notes' VPP scenario (see README: Getting VPP)"
	fi
	[[ -x $VPP_DIR/bin/vpp && -f $VPP_DIR/plugin-path ]] || die "USERSPACE_VPP_DIR=$VPP_DIR is not a folder hack/vpp-assets.sh printed"
	ok "VPP in $VPP_DIR (plugins in $(cat "$VPP_DIR/plugin-path"))"

	step "Build DPDK's l3fwd from Debian's dpdk-doc sources (cached by DPDK version)"
	local ver cache
	ver=$(dpkg-query -W -f='${Version}' libdpdk-dev)
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/userspace-cni/l3fwd-$ver
	L3FWD=$cache/dpdk-l3fwd
	if [[ -x $L3FWD ]]; then
		say "cached: $L3FWD"
	else
		show cp -r /usr/share/dpdk/examples "$T/examples"
		# l3fwd asks every port for IPv4 checksum offload, which the
		# virtio-user port lacks, and DPDK 22.11 refuses the port
		# ("requested Rx offloads 0xe doesn't match Rx offloads capabilities").
		# Ask only for what the port has; the checksum stays unchecked, as
		# it was with the DPDK of the notes.
		say "patch: request only the Rx offloads the port supports (virtio-user has no IPv4 checksum offload)"
		sed -i -e 's/^\(\t*\)rxq_conf.offloads = port_conf.rxmode.offloads;$/\1rxq_conf.offloads = port_conf.rxmode.offloads \& dev_info.rx_offload_capa;/' \
			-e 's/^\(\t*\)local_port_conf.rx_adv_conf.rss_conf.rss_hf &=$/\1local_port_conf.rxmode.offloads \&= dev_info.rx_offload_capa;\n&/' \
			"$T/examples/l3fwd/main.c"
		[[ $(grep -c 'offloads &= dev_info.rx_offload_capa;\|offloads & dev_info.rx_offload_capa;' "$T/examples/l3fwd/main.c") == 2 ]] ||
			die "l3fwd's main.c (DPDK $ver) no longer has the lines the demo patches"
		say "$ make -s -j2 -C $T/examples/l3fwd"
		make -s -j2 -C "$T/examples/l3fwd" >"$T/l3fwd-build.log" 2>&1 ||
			{ tail -n 30 "$T/l3fwd-build.log"; die "building l3fwd failed"; }
		mkdir -p "$cache"
		cp -L "$T/examples/l3fwd/build/l3fwd" "$L3FWD.tmp.$RUN" && mv -f "$L3FWD.tmp.$RUN" "$L3FWD"
		rm -rf "$T/examples"
		say "built and cached: $L3FWD"
	fi

	# ---- 2. the switch
	step "Start a private OVS-DPDK (no hugepages) in $T/ovs"
	OVS_DIR=$T/ovs
	OVS_NS=usp-demo-$RUN-ovs
	mkdir -p "$OVS_DIR"
	# Every default path of the OVS tools (pidfiles, control sockets, logs,
	# database) goes into that directory: the system's OVS is never touched.
	export OVS_RUNDIR=$OVS_DIR OVS_LOGDIR=$OVS_DIR OVS_DBDIR=$OVS_DIR OVS_SYSCONFDIR=$OVS_DIR
	say "its own network namespace, so that the netdev datapath's tap devices (ovs-netdev, br0) clash with nothing"
	NETNSES+=("$OVS_NS")
	show ip netns add "$OVS_NS"
	show ovsdb-tool create "$OVS_DIR/conf.db" "$OVS_SCHEMA"
	show ovsdb-server -vconsole:off "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" \
		--pidfile="$OVS_DIR/ovsdb-server.pid" --unixctl="$OVS_DIR/ovsdb-server.ctl" \
		--log-file="$OVS_DIR/ovsdb-server.log" --detach 3>&- 4>&-
	PREFIXES+=("usp-demo-$RUN-ovs")
	show_vsctl --no-wait init -- set Open_vSwitch . other_config:dpdk-init=true \
		"other_config:dpdk-extra=--no-huge -m 512 --legacy-mem --no-pci --file-prefix=usp-demo-$RUN-ovs" \
		other_config:per-port-memory=true other_config:pmd-cpu-mask=0x2 other_config:pmd-maxsleep=10000
	show nsenter --net="/var/run/netns/$OVS_NS" -- "$OVS_VSWITCHD" -vconsole:off "unix:$OVS_DIR/db.sock" \
		--pidfile="$OVS_DIR/ovs-vswitchd.pid" --unixctl="$OVS_DIR/ovs-vswitchd.ctl" \
		--log-file="$OVS_DIR/ovs-vswitchd.log" --detach 3>&- 4>&-
	local i
	for ((i = 0; i < 300; i++)); do
		[[ $(vsctl get Open_vSwitch . dpdk_initialized 2>/dev/null) == true ]] && break
		daemon_pid ovs-vswitchd >/dev/null || { tail -n 30 "$OVS_DIR/ovs-vswitchd.log"; die "ovs-vswitchd exited"; }
		sleep 0.1
	done
	((i < 300)) || { tail -n 30 "$OVS_DIR/ovs-vswitchd.log"; die "DPDK not initialised after 30 s"; }
	ok "ovsdb-server pid $(daemon_pid ovsdb-server), ovs-vswitchd-dpdk pid $(daemon_pid ovs-vswitchd), dpdk_initialized=true, PMD on CPU 1"
	say "the administrator's bridge, which the notes assume:"
	show_vsctl add-br br0 -- set bridge br0 datapath_type=netdev

	# ---- 3. the plugin's node policy
	step "Point the plugin at this switch: a private node policy (USERSPACE_CNI_POLICY)"
	cat >"$T/policy.json" <<-EOF
		{
		  "ovsdbSocketDirs": ["$OVS_DIR"],
		  "ovsdbSocket": "unix:$OVS_DIR/db.sock",
		  "ovsRunDir": "$OVS_DIR",
		  "stateDir": "$T/state",
		  "shortSocketDir": "$T/short",
		  "logDirs": ["$T/log"]
		}
	EOF
	indent <"$T/policy.json"
	say "(every other field keeps its default: sockets stay under $VHU_HOST, where the notes' pods look)"

	# ---- 4. the pods' sandboxes and their attachments
	step "Create the two pod sandboxes and ADD their attachments, as Multus delegates"
	if [[ ! -e $VHU_POD ]]; then
		mkdir "$VHU_POD"
		CREATED_VHU=true
		say "created the mount point $VHU_POD (removed again at the end)"
	fi
	[[ -e /etc/hostname ]] || die "/etc/hostname is missing: it is the mount point of each pod's hostname file"
	local pod
	for pod in "${PODS[@]}"; do
		POD_ID[$pod]=$(rand_hex 32)
		POD_UID[$pod]=$(cat /proc/sys/kernel/random/uuid)
		POD_NS[$pod]=usp-demo-$RUN-$pod
		NETNSES+=("${POD_NS[$pod]}")
		ip netns add "${POD_NS[$pod]}"
		ip -n "${POD_NS[$pod]}" link set lo up
		mkdir -p "$T/io.containerd.grpc.v1.cri/sandboxes/${POD_ID[$pod]}"
		echo "$pod" >"$T/io.containerd.grpc.v1.cri/sandboxes/${POD_ID[$pod]}/hostname"
		say "pod $pod: sandbox id ${POD_ID[$pod]}, netns /var/run/netns/${POD_NS[$pod]}"
	done
	for pod in "${PODS[@]}"; do
		printf '\n    %sCNI ADD for the %s pod%s\n' "$B" "$pod" "$N"
		local args="IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$pod;K8S_POD_INFRA_CONTAINER_ID=${POD_ID[$pod]};K8S_POD_UID=${POD_UID[$pod]}"
		[[ $pod == pktgen ]] && args+=";MAC=$PKTGEN_MAC"
		say "$ echo '$NETCONF' |"
		say "    CNI_COMMAND=ADD CNI_CONTAINERID=${POD_ID[$pod]} CNI_NETNS=/var/run/netns/${POD_NS[$pod]}"
		say "    CNI_IFNAME=$IFNAME CNI_PATH=$CNI_PATH_DEMO USERSPACE_CNI_POLICY=$T/policy.json"
		say "    CNI_ARGS='$args' bin/userspace"
		[[ $pod == pktgen ]] && say "(MAC=: the pod asked for $PKTGEN_MAC in its network-selection annotation; Multus passes it on in CNI_ARGS)"
		ADDED[$pod]=1
		local res
		res=$(cni ADD "$pod" 2>"$T/add-$pod.err") || { cat "$T/add-$pod.err" >&2; echo "$res" >&2; die "CNI ADD for $pod failed"; }
		jq . <<<"$res" | indent
		say "the pod's directory on the host:"
		# shellcheck disable=SC2012 # what a user would type; the names are the plugin's
		ls -l "$VHU_HOST/${POD_ID[$pod]}" | indent
		if [[ $pod == pktgen ]]; then
			say "the config data the pod's app reads (configData-<id12>-$IFNAME.json):"
			jq . "$VHU_HOST/${POD_ID[$pod]}/configData-${POD_ID[$pod]:0:12}-$IFNAME.json" | indent
		fi
	done
	say "the switch now has:"
	say "$ ovs-vsctl list-ports br0"
	vsctl list-ports br0 | indent
	local port
	for pod in "${PODS[@]}"; do
		port=${POD_ID[$pod]:0:12}-$IFNAME
		say "$port: $(vsctl get Interface "$port" type) $(vsctl get Interface "$port" external_ids:\"userspace-cni/pod-name\")"
	done

	# ---- 5. the notes' apps
	step "Start the l3fwd pod with the notes' command"
	start_pod l3fwd
	wait_log "$T/l3fwd.log" 'entering main loop|L3FWD: .*main loop' "${POD_PID[l3fwd]}" 30 || die "l3fwd did not start"
	grep -a '^pod\$' "$T/l3fwd.log" | indent
	local l3mac
	l3mac=$(grep -aoE 'Address: ?([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}' "$T/l3fwd.log" | head -n 1 | grep -oE '([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}') ||
		die "l3fwd printed no port address"
	ok "l3fwd forwards on lcore 0 (CPU 0); its port's MAC is $l3mac, it routes 198.18.0.0/24 back out port 0 to $PKTGEN_MAC"

	step "Start the pktgen pod: dpdk-testpmd in $PKTGEN_MODE mode, as the packet generator"
	start_pod pktgen "$l3mac"
	wait_log "$T/pktgen.log" 'NIC statistics for port 0' "${POD_PID[pktgen]}" 30 || die "testpmd did not start"
	grep -a '^pod[$>]' "$T/pktgen.log" | indent
	if [[ $PKTGEN_MODE == txonly ]]; then
		ok "testpmd sends 64-byte UDP packets $PKTGEN_MAC -> $l3mac, ${TX_IPS/,/ -> }; l3fwd routes 198.18.0.0/24 out port 0 to $PKTGEN_MAC"
	else
		ok "testpmd's flowgen sends 64-byte UDP packets and counts what comes back"
		say "its addresses are fixed in DPDK 22.11: 00:01:02:03:04:00 -> 00:01:02:03:04:01, 10.254.0.0 -> 10.253.0.0."
		say "br0 floods them (unknown destination MAC) to l3fwd, which routes what its table lacks back out"
		say "the port it came in on (port 0) to --eth-dest, $PKTGEN_MAC; br0 floods that to pktgen too."
	fi
	say "lcores: testpmd main lcore 0 and forwarding lcore 1 and l3fwd's lcore 0 all on CPU 0; the switch's PMD has CPU 1"

	# ---- 6. traffic
	step "Watch the counters: packets must cross br0 both ways"
	local pg=${POD_ID[pktgen]:0:12}-$IFNAME l3=${POD_ID[l3fwd]:0:12}-$IFNAME pg_dp l3_dp
	pg_dp=$(dp_port "$pg")
	l3_dp=$(dp_port "$l3")
	say "from the switch ($SAMPLES samples, 5 s apart: OVS refreshes Interface statistics every 5 s):"
	say "  pktgen->br0, l3fwd->br0: packets br0 received from each pod (its datapath flows, ovs-appctl dpctl/dump-flows)"
	say "  drops->l3fwd, drops->pktgen: packets br0 could not hand to a busy pod (Interface statistics ovs_tx_failure_drops)"
	say "from the pktgen pod: testpmd's own TX and RX counters (RX: l3fwd's packets arriving back)"
	say "l3fwd forwards only what it receives, so l3fwd->br0 rising means pktgen's packets reached it"
	printf '    %-6s %13s %13s %14s %14s %13s %13s\n' sample pktgen-\>br0 l3fwd-\>br0 drops-\>l3fwd drops-\>pktgen "testpmd TX" "testpmd RX"
	local s from_pg from_l3 drop_l3 drop_pg tp_tx tp_rx
	for ((s = 1; s <= SAMPLES; s++)); do
		nap 5
		for pod in "${PODS[@]}"; do
			alive "${POD_PID[$pod]}" || { tail -n 30 "$T/$pod.log"; die "the $pod pod exited"; }
		done
		from_pg=$(dp_packets_from "$pg_dp")
		from_l3=$(dp_packets_from "$l3_dp")
		drop_l3=$(iface_stat "$l3" ovs_tx_failure_drops)
		drop_pg=$(iface_stat "$pg" ovs_tx_failure_drops)
		tp_tx=$(testpmd_stat TX-packets)
		tp_rx=$(testpmd_stat RX-packets)
		printf '    %-6s %13s %13s %14s %14s %13s %13s\n' "$s" "$from_pg" "$from_l3" "$drop_l3" "$drop_pg" "$tp_tx" "$tp_rx"
	done
	say "$ ovs-vsctl get Interface $l3 statistics   # l3fwd's port, for example"
	vsctl get Interface "$l3" statistics | fold -s -w 100 | indent
	say "(OVS 3.1 counts packets only on dpdkvhostuserclient ports; on the notes' dpdkvhostuser ports, where it is the"
	say " vhost-user server, it reports only its own drop counters: hence the datapath flows above)"
	local failed=()
	((from_pg > 0)) || failed+=("br0 received nothing from pktgen")
	((from_l3 > 0)) || failed+=("br0 received nothing from l3fwd: pktgen's packets did not reach it")
	if [[ $PKTGEN_MODE == txonly ]]; then
		# txonly never reads its receive queue: arrival cannot be counted
		# in the pod, only that br0 sent l3fwd's packets towards it.
		((drop_pg > 0)) || failed+=("br0 sent nothing from l3fwd towards pktgen")
	else
		((tp_rx > 0)) || failed+=("testpmd received nothing back from l3fwd")
	fi
	((${#failed[@]} == 0)) || die "${failed[*]}"
	if [[ $PKTGEN_MODE == txonly ]]; then
		ok "pktgen -> l3fwd: l3fwd sent $from_l3 packets back into br0; l3fwd -> pktgen: br0 forwarded them towards pktgen"
		say "(txonly never reads its receive queue: once its ring is full, br0 counts l3fwd's packets as drops->pktgen)"
	else
		ok "pktgen -> l3fwd -> pktgen: l3fwd sent $from_l3 packets back into br0, and testpmd received $tp_rx of them"
	fi
	say "(rates are not the point: three busy pollers share two CPUs here, so most packets are dropped)"

	# ---- 7. tear down
	step "Stop the pods, then DEL their attachments through the plugin (as the runtime does)"
	for pod in pktgen l3fwd; do
		say "stopping the $pod pod (pid ${POD_PID[$pod]}, SIGTERM)"
		stop_pod "$pod"
		grep -aE '^(Closing port|Done|Bye|Port 0: ).*' "$T/$pod.log" | tail -n 3 | indent || true
	done
	for pod in "${PODS[@]}"; do
		say "$ CNI_COMMAND=DEL ... (same environment and stdin) bin/userspace   # $pod"
		cni DEL "$pod" >"$T/del-$pod.out" 2>"$T/del-$pod.err" || { cat "$T/del-$pod.out" "$T/del-$pod.err" >&2; die "CNI DEL for $pod failed"; }
		unset 'ADDED[$pod]'
	done
	local ports left=()
	ports=$(vsctl list-ports br0)
	say "$ ovs-vsctl list-ports br0"
	if [[ -n $ports ]]; then left+=("ports on br0: $ports"); indent <<<"$ports"; else say "  (none)"; fi
	for pod in "${PODS[@]}"; do
		[[ -e $VHU_HOST/${POD_ID[$pod]} ]] && left+=("$VHU_HOST/${POD_ID[$pod]}: $(find "$VHU_HOST/${POD_ID[$pod]}" -mindepth 1 -printf '%f ')")
	done
	local recs
	recs=$(find "$T/state" -name '*.json' 2>/dev/null)
	[[ -z $recs ]] || left+=("plugin records: $recs")
	((${#left[@]} == 0)) || die "DEL left: ${left[*]}"
	ok "no port on br0, no $VHU_HOST/<id> directory, no record in the plugin's state dir"

	vpp_scenario

	say ""
	say "all steps done in $((SECONDS - start)) s"
}

# vpp_scenario runs the notes' VPP scenario on a private host VPP: bridge
# domain 4, two pods (network namespaces) each with its own VPP running
# vpp-app on the notes' files, vppctl ping between them, DEL leaves nothing.
VPP_NETCONF='{"cniVersion":"0.3.1","type":"userspace","name":"memif-network","host":{"engine":"vpp","iftype":"memif","netType":"bridge","memif":{"role":"master","mode":"ethernet"},"bridge":{"bridgeId":4}},"container":{"engine":"vpp","iftype":"memif","netType":"interface","memif":{"role":"slave","mode":"ethernet"}},"ipam":{"type":"host-local","subnet":"172.22.0.0/24","rangeStart":"172.22.0.2","rangeEnd":"172.22.0.254","routes":[{"dst":"0.0.0.0/0"}],"gateway":"172.22.0.1"}}'
VPP_PODS=(vpp1 vpp2)
VPP_DIR=${USERSPACE_VPP_DIR:-} # the folder hack/vpp-assets.sh prints
declare -A VPP_PID=()          # the host's and the pods' VPPs, by name
VPP_ADDED=()
VPP_NOTES=/var/run/vpp/cni

vpp_cni() { plugin "$1" "$2" "$VPP_NETCONF" "$T/vpp-policy.json"; }

# start_vpp starts VPP $1 (no hugepages, no DPDK, its own sockets and
# shared-memory prefix) in network namespace $2 ("" for the host's) and
# waits for its API and CLI sockets.
start_vpp() {
	local name=$1 ns=$2 d=$T/vpp-$1 i plugins
	plugins=$(cat "$VPP_DIR/plugin-path")
	mkdir -p "$d"
	cat >"$d/startup.conf" <<-CONF
		unix { nodaemon runtime-dir $d cli-listen $d/cli.sock log $d/vpp.log pidfile $d/vpp.pid nosyslog poll-sleep-usec 100 }
		api-segment { prefix usp-demo-$RUN-$name }
		socksvr { socket-name $d/api.sock }
		statseg { socket-name $d/stats.sock size 32m page-size 4k }
		memory { main-heap-size 256M main-heap-page-size 4k }
		buffers { buffers-per-numa 16384 page-size 4k default data-size 2048 }
		cpu { main-core 0 workers 0 }
		plugins { path $plugins plugin default { disable } plugin memif_plugin.so { enable } plugin ping_plugin.so { enable } }
	CONF
	if [[ -n $ns ]]; then
		nsenter --net="/var/run/netns/$ns" -- "$VPP_DIR/bin/vpp" -c "$d/startup.conf" </dev/null >"$d/out.log" 2>&1 3>&- 4>&- &
	else
		"$VPP_DIR/bin/vpp" -c "$d/startup.conf" </dev/null >"$d/out.log" 2>&1 3>&- 4>&- &
	fi
	VPP_PID[$name]=$!
	for ((i = 0; i < 300; i++)); do
		[[ -S $d/api.sock && -S $d/cli.sock ]] && return 0
		alive "${VPP_PID[$name]}" || { tail -n 20 "$d/out.log" "$d/vpp.log" 2>/dev/null; die "VPP $name exited"; }
		sleep 0.1
	done
	die "VPP $name: no API socket after 30 s"
}

vppctl_of() {
	local name=$1
	shift
	"$VPP_DIR/bin/vppctl" -s "$T/vpp-$name/cli.sock" "$@"
}

# stop_vpp stops VPP $1 by PID and removes its shared memory.
stop_vpp() {
	local name=$1
	[[ -n ${VPP_PID[$name]:-} ]] || return 0
	terminate "${VPP_PID[$name]}" || true
	wait "${VPP_PID[$name]}" 2>/dev/null || true
	unset 'VPP_PID[$name]'
	rm -f -- /dev/shm/"usp-demo-$RUN-$name"-*
}

# vpp_cleanup: the pods' VPPs first, then DEL (the host VPP must still run
# for it), then the host VPP.
vpp_cleanup() {
	local pod
	for pod in "${VPP_PODS[@]}"; do stop_vpp "$pod"; done
	for pod in "${VPP_ADDED[@]}"; do vpp_cni DEL "$pod" >/dev/null 2>&1 || say "VPP DEL for the $pod pod failed"; done
	VPP_ADDED=()
	stop_vpp host
	for pod in "${VPP_PODS[@]}"; do
		[[ -n ${POD_ID[$pod]:-} && -e $VPP_NOTES/${POD_ID[$pod]} ]] && rm -rf -- "${VPP_NOTES:?}/${POD_ID[$pod]}"
	done
	return 0
}

# memif_connected waits until VPP $1 reports its memif connected.
memif_connected() {
	local i
	for ((i = 0; i < 300; i++)); do
		vppctl_of "$1" show memif 2>/dev/null | grep -q 'flags.*connected' && return 0
		sleep 0.1
	done
	return 1
}

vpp_scenario() {
	step "The notes' VPP scenario: a private host VPP (no hugepages, no DPDK) with bridge domain 4"
	say "VPP from $VPP_DIR"
	start_vpp host ""
	ok "host VPP pid ${VPP_PID[host]}, API socket $T/vpp-host/api.sock"
	say "the administrator's bridge domain, which the notes assume:"
	say "$ vppctl create bridge-domain 4"
	vppctl_of host create bridge-domain 4 | indent
	cat >"$T/vpp-policy.json" <<-EOF
		{
		  "vppApiSocketDirs": ["$T/vpp-host"],
		  "vppApiSocket": "$T/vpp-host/api.sock",
		  "stateDir": "$T/state",
		  "shortSocketDir": "$T/short",
		  "logDirs": ["$T/log"]
		}
	EOF
	say "the plugin's node policy points at its API socket:"
	indent <"$T/vpp-policy.json"

	step "Create two VPP pod sandboxes and ADD them to the notes' memif-network, as Multus delegates"
	local pod addr=() i=0 out
	for pod in "${VPP_PODS[@]}"; do
		POD_ID[$pod]=$(rand_hex 32)
		POD_UID[$pod]=$(cat /proc/sys/kernel/random/uuid)
		POD_NS[$pod]=usp-demo-$RUN-$pod
		NETNSES+=("${POD_NS[$pod]}")
		ip netns add "${POD_NS[$pod]}"
		ip -n "${POD_NS[$pod]}" link set lo up
	done
	for pod in "${VPP_PODS[@]}"; do
		say "pod $pod: sandbox id ${POD_ID[$pod]}, netns /var/run/netns/${POD_NS[$pod]}"
		say "$ echo '$VPP_NETCONF' |"
		say "    CNI_COMMAND=ADD CNI_CONTAINERID=${POD_ID[$pod]} CNI_PATH=$CNI_PATH_DEMO ... bin/userspace"
		VPP_ADDED+=("$pod")
		out=$(vpp_cni ADD "$pod" 2>"$T/vpp-add-$pod.err") || { cat "$T/vpp-add-$pod.err" >&2; echo "$out" >&2; die "VPP ADD for the $pod pod failed"; }
		addr[i]=$(jq -r '.ips[0].address' <<<"$out")
		say "  address ${addr[i]}; the notes' files for the pod:"
		# shellcheck disable=SC2012 # what a user would type
		ls -l "$VPP_NOTES/${POD_ID[$pod]}" | indent
		i=$((i + 1))
	done
	say "$ vppctl show bridge-domain 4 detail   # the host VPP"
	vppctl_of host show bridge-domain 4 detail | indent

	step "Start each pod's own VPP in its network namespace and run vpp-app, as the notes' pods do"
	for pod in "${VPP_PODS[@]}"; do
		start_vpp "$pod" "${POD_NS[$pod]}"
		say "$pod pod: VPP pid ${VPP_PID[$pod]} in netns ${POD_NS[$pod]}"
		say "\$ vpp-app -notes-dir $VPP_NOTES/\${ID}   # in the $pod pod, ID=${POD_ID[$pod]:0:12}..."
		nsenter --net="/var/run/netns/${POD_NS[$pod]}" -- "$BIN/vpp-app" -api-socket "$T/vpp-$pod/api.sock" \
			-notes-dir "$VPP_NOTES/${POD_ID[$pod]}" -wait 30s >"$T/vpp-app-$pod.log" 2>&1 ||
			{ indent <"$T/vpp-app-$pod.log"; die "vpp-app failed in the $pod pod"; }
		indent <"$T/vpp-app-$pod.log"
	done
	for pod in "${VPP_PODS[@]}"; do
		memif_connected "$pod" || { vppctl_of "$pod" show memif | indent; die "the $pod pod's memif did not connect to the host VPP"; }
	done
	ok "both pods' memif slaves are connected to the host VPP's masters in bridge domain 4"

	step "Ping from one pod's VPP to the other across bridge domain 4"
	say "\$ vppctl ping ${addr[1]%/*} repeat 5 interval 0.5   # in the ${VPP_PODS[0]} pod"
	out=$(vppctl_of "${VPP_PODS[0]}" ping "${addr[1]%/*}" repeat 5 interval 0.5 2>&1) || true
	indent <<<"$out"
	local sent received
	sent=$(grep -oE '[0-9]+ sent' <<<"$out" | grep -oE '[0-9]+') || sent=0
	received=$(grep -oE '[0-9]+ received' <<<"$out" | grep -oE '[0-9]+') || received=0
	((sent == 5 && received >= 4)) || die "ping: $received of $sent answered, want at least 4 of 5 (the first may be lost to ARP)"
	ok "$received of $sent pings answered between the VPP pods"

	step "Stop the pods' VPPs, DEL both attachments, and check the host VPP"
	for pod in "${VPP_PODS[@]}"; do stop_vpp "$pod"; done
	for pod in "${VPP_PODS[@]}"; do
		say "$ CNI_COMMAND=DEL ... bin/userspace   # $pod"
		vpp_cni DEL "$pod" >"$T/vpp-del-$pod.out" 2>"$T/vpp-del-$pod.err" ||
			{ cat "$T/vpp-del-$pod.out" "$T/vpp-del-$pod.err" >&2; die "VPP DEL for $pod failed"; }
	done
	VPP_ADDED=()
	local left=() ifs socks
	say "$ vppctl show interface"
	ifs=$(vppctl_of host show interface)
	indent <<<"$ifs"
	grep -q '^memif' <<<"$ifs" && left+=("memif interfaces")
	# VPP's default socket 0 is the only memif socket registration left.
	socks=$(vppctl_of host show memif | grep -cE '^ *[0-9]+ +[0-9]+ ') || true
	((socks <= 1)) || left+=("$socks memif socket registrations")
	for pod in "${VPP_PODS[@]}"; do
		[[ -e $VPP_NOTES/${POD_ID[$pod]} ]] && left+=("$VPP_NOTES/${POD_ID[$pod]}")
		compgen -G "$VPP_NOTES/shared/memif-${POD_ID[$pod]:0:12}-*" >/dev/null && left+=("$pod's memif socket file")
	done
	[[ -z $(find "$T/state" -name '*.json' 2>/dev/null) ]] || left+=("plugin records")
	((${#left[@]} == 0)) || die "DEL left: ${left[*]}"
	ok "no memif, socket registration, socket file, notes directory or record is left; bridge domain 4 (the administrator's) stays"
	stop_vpp host
}

main "$@"
