// Package sandboxid finds, from inside a pod, the container id of the pod's
// sandbox: the CNI_CONTAINERID the plugin was called with, which the
// application notes' pods need to find their socket directory.
//
// Every container runtime bind-mounts the sandbox's hostname (and
// resolv.conf) file into the pod's containers, from a directory named after
// the sandbox: Docker /var/lib/docker/containers/<id>/hostname, containerd
// .../io.containerd.grpc.v1.cri/sandboxes/<id>/hostname, CRI-O
// .../overlay-containers/<id>/userdata/hostname. The mount's root in
// mountinfo names it.
package sandboxid

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// DefaultMountinfo is what the notes' get-prefix.sh read: the mounts of
// the pod's first process.
const DefaultMountinfo = "/proc/1/task/1/mountinfo"

// mountPoints are searched in order: the hostname file is the notes' choice.
var mountPoints = []string{"/etc/hostname", "/etc/resolv.conf"}

var sourceRE = regexp.MustCompile(`/([0-9a-f]{64})/(?:userdata/)?(?:hostname|resolv\.conf)$`)

// FromFile reads a mountinfo file.
func FromFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	id, err := FromMountinfo(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// FromMountinfo finds the sandbox id in mountinfo contents.
func FromMountinfo(r io.Reader) (string, error) {
	roots := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options...
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescape(f[4])
		if _, seen := roots[mp]; !seen {
			roots[mp] = unescape(f[3])
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	for _, mp := range mountPoints {
		if m := sourceRE.FindStringSubmatch(roots[mp]); m != nil {
			return m[1], nil
		}
	}
	return "", fmt.Errorf("no sandbox id: neither %s is mounted from a container runtime's sandbox directory", strings.Join(mountPoints, " nor "))
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and
// backslash.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// Placeholder in a path stands for the sandbox id.
const Placeholder = "{sandbox}"

// Expand replaces Placeholder in each path with the sandbox id, reading
// the mountinfo file once and only when a path holds the placeholder.
func Expand(mountinfo string, paths ...*string) error {
	id := ""
	for _, p := range paths {
		if !strings.Contains(*p, Placeholder) {
			continue
		}
		if id == "" {
			var err error
			if id, err = FromFile(mountinfo); err != nil {
				return err
			}
		}
		*p = strings.ReplaceAll(*p, Placeholder, id)
	}
	return nil
}
