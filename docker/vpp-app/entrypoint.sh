#!/bin/sh
# Entry point of the vpp-app image (docker/vpp-app/Dockerfile): starts the
# pod's VPP, waits for its binary API socket, runs vpp-app once to create the
# pod's memif interfaces from the userspace CNI plugin's config data, then
# stays with VPP: the container lives as long as VPP does and exits with its
# status. If VPP dies before its socket appears, or vpp-app fails, the
# container exits non-zero so the kubelet restarts it.
#
# Arguments are passed on to vpp-app (e.g. -if net1 or -dir DIR). Settings:
#   VPP_CONF          VPP's configuration (/etc/vpp/startup.conf)
#   VPP_API_SOCKET    its API socket, as in the configuration (/run/vpp/api.sock)
#   VPP_WAIT_SECONDS  how long to wait for the socket (60)
# POSIX sh.
set -eu

VPP_CONF=${VPP_CONF:-/etc/vpp/startup.conf}
VPP_API_SOCKET=${VPP_API_SOCKET:-/run/vpp/api.sock}
VPP_WAIT_SECONDS=${VPP_WAIT_SECONDS:-60}

log() { echo "vpp-app-entrypoint: $*" >&2; }

# stop_vpp: ask VPP to stop and reap it.
stop_vpp() {
	kill -TERM "$vpp_pid" 2>/dev/null || true
	wait "$vpp_pid" 2>/dev/null || true
}

mkdir -p "$(dirname "$VPP_API_SOCKET")"
# A socket left by an earlier run of the container (on a volume) would look
# ready before VPP is.
rm -f "$VPP_API_SOCKET"

vpp -c "$VPP_CONF" &
vpp_pid=$!
stopping=false
trap 'log "stopping VPP"; stopping=true; kill -TERM "$vpp_pid" 2>/dev/null || true' TERM INT

# Wait for the API socket, in tenths of a second.
tries=$((VPP_WAIT_SECONDS * 10))
while [ ! -S "$VPP_API_SOCKET" ]; do
	if ! kill -0 "$vpp_pid" 2>/dev/null; then
		rc=0
		wait "$vpp_pid" || rc=$?
		if [ "$stopping" = true ]; then
			exit "$rc"
		fi
		log "VPP exited (status $rc) before creating $VPP_API_SOCKET"
		exit $((rc == 0 ? 1 : rc))
	fi
	tries=$((tries - 1))
	if [ "$tries" -le 0 ]; then
		log "VPP did not create $VPP_API_SOCKET within ${VPP_WAIT_SECONDS}s"
		stop_vpp
		exit 1
	fi
	sleep 0.1
done

rc=0
vpp-app -api-socket "$VPP_API_SOCKET" "$@" || rc=$?
if [ "$rc" -ne 0 ]; then
	log "vpp-app failed (status $rc); stopping VPP"
	stop_vpp
	exit "$rc"
fi
log "interfaces configured; VPP keeps running (vppctl -s /run/vpp/cli.sock)"

# wait returns early when a trapped signal arrives; wait again until VPP has
# really exited (a zombie still answers kill -0, so its status is collected).
while :; do
	rc=0
	wait "$vpp_pid" || rc=$?
	kill -0 "$vpp_pid" 2>/dev/null || break
done
exit "$rc"
