#!/usr/bin/env bash
# progress.sh WHAT COMMAND...: runs COMMAND and, while it runs, prints
# "still WHAT (N s)" every 15 s, so that a step that takes minutes the first
# time (Go downloading and compiling the modules) does not look hung. Exits
# with COMMAND's status.
set -euo pipefail
what=$1
shift
"$@" &
pid=$!
start=$SECONDS
last=$SECONDS
while kill -0 "$pid" 2>/dev/null; do
	sleep 1
	if ((SECONDS - last >= 15)) && kill -0 "$pid" 2>/dev/null; then
		echo "    still $what ($((SECONDS - start)) s)"
		last=$SECONDS
	fi
done
wait "$pid"
