package testbed

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// registryDir lists the switches test beds have started, so that a later
// test bed can stop the ones whose test binary died without running its
// cleanup (a panic in a test goroutine exits without deferred calls, and the
// daemons detach, so nothing else would ever stop them).
const registryDir = "/run/usp-testbed"

// entry is one started switch: which process owns it and what to remove.
type entry struct {
	OwnerPID   int    `json:"ownerPID"`
	OwnerStart string `json:"ownerStart"`
	Dir        string `json:"dir"`
	NetNS      string `json:"netns"`
	FilePrefix string `json:"filePrefix"`
}

// register records o as owned by this process.
func (o *OVS) register() error {
	self, err := newProc(os.Getpid())
	if err != nil {
		return err
	}
	e := entry{OwnerPID: self.pid, OwnerStart: self.start, Dir: o.Dir, NetNS: o.FilePrefix, FilePrefix: o.FilePrefix}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(registryDir, o.FilePrefix+".json"), data, 0o644)
}

func (o *OVS) unregister() error {
	err := os.Remove(filepath.Join(registryDir, o.FilePrefix+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ReapOrphans stops the switches of test beds whose owning process is gone:
// their daemons (found by pidfile and checked to be serving that
// directory), DPDK runtime dir, network namespace and directory.
func ReapOrphans() error {
	entries, err := os.ReadDir(registryDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, de := range entries {
		path := filepath.Join(registryDir, de.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var e entry
		if json.Unmarshal(data, &e) != nil {
			_ = os.Remove(path)
			continue
		}
		if (proc{pid: e.OwnerPID, start: e.OwnerStart}).running() {
			continue // its test binary is alive and will clean up
		}
		if err := reap(e); err != nil {
			errs = append(errs, fmt.Errorf("reaping orphaned switch %s: %w", e.Dir, err))
			continue
		}
		_ = os.Remove(path)
	}
	return errors.Join(errs...)
}

func reap(e entry) error {
	var errs []error
	for _, name := range []string{"ovs-vswitchd.pid", "ovsdb-server.pid"} {
		pid, err := readPidfile(filepath.Join(e.Dir, name))
		if err != nil {
			continue
		}
		// Only a process serving this very directory is ours to kill.
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline), e.Dir) {
			continue
		}
		p, err := newProc(pid)
		if err != nil {
			continue
		}
		errs = append(errs, p.terminate(5*time.Second))
	}
	errs = append(errs, removeRuntimeDir(e.FilePrefix), os.RemoveAll(e.Dir))
	if e.NetNS != "" {
		ns := &NetNS{Name: e.NetNS}
		if _, err := os.Stat(ns.Path()); err == nil {
			errs = append(errs, ns.Close())
		}
	}
	return errors.Join(errs...)
}
