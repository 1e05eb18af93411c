package plugin_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// addIPAMScript puts an IPAM plugin script called name into the test's
// CNI_PATH; LOG in it is the recording log.
func addIPAMScript(t *testing.T, name, body string) {
	t.Helper()
	body = strings.ReplaceAll("#!/bin/sh\n"+body, "LOG", ipamLog)
	if err := os.WriteFile(filepath.Join(cniPath, name), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// An IPAM plugin that breaks off without a CNI error may have allocated: the
// failed ADD names it, passes on its stderr, and releases the address.
func TestIPAMCrashIsReleased(t *testing.T) {
	addIPAMScript(t, "crashing-ipam", `cat >/dev/null
printf '%s %s %s\n' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" >>"LOG"
if [ "$CNI_COMMAND" = ADD ]; then
  echo "crashing-ipam: lost its store" >&2
  exit 2
fi
exit 0
`)
	e := newEnv(t)
	id := containerID("ipam-crash")
	_, err := run(t, e.p.Add, e.args(id, "net1", e.conf("1.0.0", withIPAM("crashing-ipam"))))
	if err == nil || !strings.Contains(err.Error(), "crashing-ipam") || !strings.Contains(err.Error(), "lost its store") ||
		!strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("ADD with a crashing IPAM = %v, want an error naming it, its stderr and exit status", err)
	}
	want := []string{"ADD|" + id + "|net1", "DEL|" + id + "|net1"}
	if calls := ipamCalls(t); !slices.Equal(calls, want) {
		t.Errorf("IPAM calls %v, want %v", calls, want)
	}
}

// STATUS concerns no attachment: the IPAM plugin gets CNI_COMMAND and
// CNI_PATH (the spec's list for STATUS) and the delegation mark; CHECK gets
// the attachment's variables.
func TestIPAMStatusEnvironment(t *testing.T) {
	addIPAMScript(t, "env-ipam", `cat >/dev/null
env | grep -E '^(CNI_|USERSPACE_CNI_)' | sort | tr '\n' ' ' >>"LOG"
echo >>"LOG"
`)
	e := newEnv(t)
	if _, err := run(t, e.p.Status, gcArgs(e.conf("1.1.0", withIPAM("env-ipam")))); err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	calls := ipamCalls(t)
	want := "CNI_COMMAND=STATUS|CNI_PATH=" + cniPath + "|USERSPACE_CNI_DELEGATED=STATUS|"
	if len(calls) != 1 || calls[0] != want {
		t.Errorf("IPAM STATUS environment %q, want %q", calls, want)
	}
}
