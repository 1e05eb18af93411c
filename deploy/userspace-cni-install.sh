#!/bin/sh
# Installer of the userspace CNI plugin, run by the userspace-cni DaemonSet
# (deploy/userspace-cni.yaml) from the image userspace-cni:latest, where it
# lives at /usr/local/bin/userspace-cni-install.sh next to the plugin binary
# /usr/local/bin/userspace.
#
# On the host (mounted under HOST_ROOT) it installs, each file atomically
# (written beside its target, then renamed over it, so a plugin process
# never reads half a file):
#   /opt/cni/bin/userspace-kube                 the plugin's Kubernetes helper
#                                               (installed first: the plugin
#                                               runs it from its own directory)
#   /opt/cni/bin/userspace                      the plugin binary
#   $KUBECONFIG_DIR/userspace.kubeconfig        for the plugin: server, and
#   $KUBECONFIG_DIR/ca.crt, $KUBECONFIG_DIR/token
#                                               the service account's CA and
#                                               token, named relative to it
#   $POLICY_FILE                                the node policy
#   $VHOSTUSER_DIR/get-prefix.sh                the notes' helper that prints
#                                               a pod's sandbox id (pods
#                                               mount this directory at /vhu,
#                                               made 0711: not listable)
# then keeps the token (which the kubelet rotates), the CA and the policy in
# sync every SYNC_INTERVAL seconds until stopped. ONESHOT=true installs once
# and exits. POSIX sh and coreutils/busybox only.
set -eu

HOST_ROOT=${HOST_ROOT:-/host}
CNI_BIN_DIR=${CNI_BIN_DIR:-/opt/cni/bin}
KUBECONFIG_DIR=${KUBECONFIG_DIR:-/etc/cni/net.d/userspace.d}
POLICY_FILE=${POLICY_FILE:-/etc/cni/userspace/policy.json}
POLICY_SOURCE=${POLICY_SOURCE:-/etc/userspace-cni/policy/policy.json}
PLUGIN_BINARY=${PLUGIN_BINARY:-/usr/local/bin/userspace}
KUBE_HELPER=${KUBE_HELPER:-/usr/local/bin/userspace-kube}
GET_PREFIX=${GET_PREFIX:-/usr/local/bin/get-prefix.sh}
VHOSTUSER_DIR=${VHOSTUSER_DIR:-/var/lib/cni/vhostuser}
SA_DIR=${SA_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}
SYNC_INTERVAL=${SYNC_INTERVAL:-60}
ONESHOT=${ONESHOT:-false}

log() { echo "userspace-cni-install: $*" >&2; }
die() { log "$*"; exit 1; }

# The API server as the pod sees it; with hostNetwork the node sees the same.
api_url() {
	if [ -n "${KUBERNETES_API_URL:-}" ]; then
		echo "$KUBERNETES_API_URL"
		return
	fi
	host=${KUBERNETES_SERVICE_HOST:-}
	port=${KUBERNETES_SERVICE_PORT:-443}
	[ -n "$host" ] || die "KUBERNETES_SERVICE_HOST is not set and KUBERNETES_API_URL not given"
	case $host in
	*:*) host="[$host]" ;; # IPv6 literal
	esac
	echo "https://$host:$port"
}

# install_file SRC DST MODE: copy SRC over DST atomically unless DST already
# has the same content. Fails (status 1) with a message.
install_file() {
	src=$1 dst=$2 mode=$3
	if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
		return 0
	fi
	tmp="$(dirname "$dst")/.$(basename "$dst").tmp.$$"
	if cp "$src" "$tmp" && chmod "$mode" "$tmp" && mv -f "$tmp" "$dst"; then
		log "installed $dst"
		return 0
	fi
	rm -f "$tmp"
	log "failed to install $dst"
	return 1
}

# install_content DST MODE: like install_file, content from stdin. (sh has
# no local variables: these names differ from install_file's.)
install_content() {
	cdst=$1 cmode=$2
	ctmp="$(dirname "$cdst")/.$(basename "$cdst").new.$$"
	if cat >"$ctmp" && install_file "$ctmp" "$cdst" "$cmode"; then
		crc=0
	else
		crc=1
	fi
	rm -f "$ctmp"
	return $crc
}

kubeconfig() {
	cat <<EOF
# Written by userspace-cni-install.sh; do not edit: the installer rewrites it.
# File names are relative to this file's directory.
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $API_URL
    certificate-authority: ca.crt
users:
- name: userspace-cni
  user:
    tokenFile: token
contexts:
- name: userspace-cni
  context:
    cluster: local
    user: userspace-cni
current-context: userspace-cni
EOF
}

default_policy() {
	printf '{\n  "kubeconfigDirs": ["%s"]\n}\n' "$KUBECONFIG_DIR"
}

# sync_credentials installs the token, the CA and the policy; it tries all
# three and fails if any failed.
sync_credentials() {
	rc=0
	install_file "$SA_DIR/token" "$HOST_ROOT$KUBECONFIG_DIR/token" 600 || rc=1
	install_file "$SA_DIR/ca.crt" "$HOST_ROOT$KUBECONFIG_DIR/ca.crt" 644 || rc=1
	if [ -f "$POLICY_SOURCE" ]; then
		install_file "$POLICY_SOURCE" "$HOST_ROOT$POLICY_FILE" 644 || rc=1
	else
		default_policy | install_content "$HOST_ROOT$POLICY_FILE" 644 || rc=1
	fi
	return $rc
}

API_URL=$(api_url) || exit 1
[ -f "$PLUGIN_BINARY" ] || die "plugin binary $PLUGIN_BINARY is missing"
[ -f "$KUBE_HELPER" ] || die "the plugin's Kubernetes helper $KUBE_HELPER is missing"
[ -f "$SA_DIR/token" ] || die "service account token $SA_DIR/token is missing"
mkdir -p "$HOST_ROOT$CNI_BIN_DIR" "$HOST_ROOT$KUBECONFIG_DIR" "$(dirname "$HOST_ROOT$POLICY_FILE")"
chmod 700 "$HOST_ROOT$KUBECONFIG_DIR"

# The token and CA first: the kubeconfig names them.
sync_credentials || die "installing the credentials or the policy failed"
kubeconfig | install_content "$HOST_ROOT$KUBECONFIG_DIR/userspace.kubeconfig" 600 || die "installing the kubeconfig failed"
install_file "$KUBE_HELPER" "$HOST_ROOT$CNI_BIN_DIR/userspace-kube" 755 || die "installing the Kubernetes helper failed"
install_file "$PLUGIN_BINARY" "$HOST_ROOT$CNI_BIN_DIR/userspace" 755 || die "installing the plugin failed"
if [ -f "$GET_PREFIX" ]; then
	mkdir -p "$HOST_ROOT$VHOSTUSER_DIR"
	# Every notes' pod mounts this directory: others may reach the script and
	# a directory whose name they know (their own sandbox id), but must not
	# list it to find other pods' socket directories.
	chmod 711 "$HOST_ROOT$VHOSTUSER_DIR"
	install_file "$GET_PREFIX" "$HOST_ROOT$VHOSTUSER_DIR/get-prefix.sh" 755 || die "installing get-prefix.sh failed"
fi
log "plugin installed; kubeconfig $KUBECONFIG_DIR/userspace.kubeconfig, policy $POLICY_FILE"

if [ "$ONESHOT" = true ]; then
	exit 0
fi
# The plugin stays installed when the DaemonSet goes: pods attached by it
# still need their DEL.
trap 'log "stopping"; exit 0' TERM INT
while :; do
	sleep "$SYNC_INTERVAL" &
	wait $! || true
	sync_credentials || log "sync failed; retrying in ${SYNC_INTERVAL}s"
done
