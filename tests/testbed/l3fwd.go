package testbed

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// CacheDir is where builds that outlive a run are kept (l3fwd here, VPP by
// hack/vpp-assets.sh): $USERSPACE_CNI_CACHE, else
// ${XDG_CACHE_HOME:-~/.cache}/userspace-cni, as the script decides.
func CacheDir() (string, error) {
	if d := os.Getenv("USERSPACE_CNI_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "userspace-cni"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "userspace-cni"), nil
}

// l3fwdPatches make l3fwd request only the Rx offloads the port supports.
// DPDK 22.11's l3fwd asks every port for IPv4 checksum offload, which a
// virtio-user port lacks, and EAL refuses the port ("requested Rx offloads
// 0xe doesn't match Rx offloads capabilities"). The checksum stays
// unchecked, as with the DPDK of the application notes.
var l3fwdPatches = []struct{ re, repl string }{
	{`(?m)^(\t*)rxq_conf\.offloads = port_conf\.rxmode\.offloads;$`,
		"${1}rxq_conf.offloads = port_conf.rxmode.offloads & dev_info.rx_offload_capa;"},
	{`(?m)^(\t*)local_port_conf\.rx_adv_conf\.rss_conf\.rss_hf &=$`,
		"${1}local_port_conf.rxmode.offloads &= dev_info.rx_offload_capa;\n$0"},
}

// patchL3fwd applies l3fwdPatches to l3fwd's main.c, failing unless each
// matches exactly once.
func patchL3fwd(code []byte) ([]byte, error) {
	for _, p := range l3fwdPatches {
		re := regexp.MustCompile(p.re)
		if n := len(re.FindAllIndex(code, -1)); n != 1 {
			return nil, fmt.Errorf("%d lines match %q, want 1: the patch needs updating", n, p.re)
		}
		code = re.ReplaceAll(code, []byte(p.repl))
	}
	return code, nil
}

// BuildL3fwd returns DPDK's l3fwd example built from Debian's dpdk-doc
// sources with l3fwdPatches, cached by DPDK version in
// CacheDir()/l3fwd-<version>/dpdk-l3fwd; cached reports whether it was
// there already. A build (about a minute on two busy cores) tells w the
// commands it runs and that it is still building every 15 s.
func BuildL3fwd(w io.Writer) (path string, cached bool, err error) {
	ver, err := run(30*time.Second, nil, "dpkg-query", "-W", "-f=${Version}", "libdpdk-dev")
	if err != nil {
		return "", false, err
	}
	cache, err := CacheDir()
	if err != nil {
		return "", false, err
	}
	path = filepath.Join(cache, "l3fwd-"+ver, "dpdk-l3fwd")
	if _, err := os.Stat(path); err == nil {
		return path, true, nil
	}
	tmp, err := os.MkdirTemp("", "usp-l3fwd-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "examples")
	fmt.Fprintf(w, "$ cp -r /usr/share/dpdk/examples %s\n", src)
	if _, err := run(time.Minute, nil, "cp", "-r", "/usr/share/dpdk/examples", src); err != nil {
		return "", false, err
	}
	mainC := filepath.Join(src, "l3fwd", "main.c")
	code, err := os.ReadFile(mainC)
	if err != nil {
		return "", false, err
	}
	fmt.Fprintln(w, "patch: request only the Rx offloads the port supports (virtio-user has no IPv4 checksum offload)")
	if code, err = patchL3fwd(code); err != nil {
		return "", false, fmt.Errorf("l3fwd's main.c (DPDK %s): %w", ver, err)
	}
	if err := os.WriteFile(mainC, code, 0o644); err != nil {
		return "", false, err
	}
	dir := filepath.Join(src, "l3fwd")
	fmt.Fprintf(w, "$ make -s -j2 -C %s\n", dir)
	stop := Progress(w, "building l3fwd", 15*time.Second)
	_, err = run(15*time.Minute, nil, "make", "-s", "-j2", "-C", dir)
	stop()
	if err != nil {
		return "", false, fmt.Errorf("building l3fwd: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", false, err
	}
	// Copy then rename: a concurrent or interrupted build never leaves a
	// half-written binary under the cached name.
	part := fmt.Sprintf("%s.tmp.%d", path, os.Getpid())
	if _, err := run(time.Minute, nil, "cp", "-L", filepath.Join(dir, "build", "l3fwd"), part); err != nil {
		return "", false, err
	}
	if err := os.Rename(part, path); err != nil {
		return "", false, errors.Join(err, os.Remove(part))
	}
	return path, false, nil
}
