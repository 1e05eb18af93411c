#!/bin/sh
# get-prefix.sh: prints the container id of this pod's sandbox (the id the
# CNI plugin was called with), for the application notes' pod commands:
#   ID=$(/vhu/get-prefix.sh); ... path=/vhu/${ID}/${ID:0:12}-net1
# The installer copies it to /var/lib/cni/vhostuser/ on every node.
#
# Every runtime bind-mounts the sandbox's hostname (and resolv.conf) into the
# pod's containers from a directory named after the sandbox:
#   Docker      /var/lib/docker/containers/<id>/hostname
#   containerd  .../io.containerd.grpc.v1.cri/sandboxes/<id>/hostname
#   CRI-O       .../overlay-containers/<id>/userdata/hostname
# so the mount's root in mountinfo names it. MOUNTINFO overrides the file read.
set -eu
mountinfo=${MOUNTINFO:-/proc/1/task/1/mountinfo}
if [ ! -r "$mountinfo" ]; then
	echo "get-prefix.sh: cannot read $mountinfo" >&2
	exit 1
fi
for mp in /etc/hostname /etc/resolv.conf; do
	# Field 4 is the mount's root, field 5 its mount point; octal escapes
	# (\040 for a space) never occur in a 64-hex id, so they can stay.
	id=$(awk -v mp="$mp" '$5 == mp { print $4; exit }' "$mountinfo" |
		sed -nE 's#.*/([0-9a-f]{64})/(userdata/)?(hostname|resolv\.conf)$#\1#p')
	if [ -n "$id" ]; then
		echo "$id"
		exit 0
	fi
done
echo "get-prefix.sh: no sandbox id in $mountinfo: neither /etc/hostname nor /etc/resolv.conf is mounted from a container runtime's sandbox directory" >&2
exit 1
