package logging

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/userspace-cni/userspace/pkg/policy"
)

func TestLevel(t *testing.T) {
	tests := []struct {
		name string
		want slog.Level
	}{
		{"panic", slog.LevelError},
		{"error", slog.LevelError},
		{"warning", slog.LevelWarn},
		{"", slog.LevelWarn},
		{"unknown", slog.LevelWarn},
		{"info", slog.LevelInfo},
		{"debug", slog.LevelDebug},
		{"verbose", slog.LevelDebug},
	}
	for _, tt := range tests {
		if got := Level(tt.name); got != tt.want {
			t.Errorf("Level(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func testPolicy(t *testing.T) (*policy.Policy, string) {
	t.Helper()
	dir := t.TempDir()
	return &policy.Policy{LogDirs: []string{dir}}, dir
}

func TestOpenStderr(t *testing.T) {
	pol, _ := testPolicy(t)
	var stderr bytes.Buffer
	log, closeLog, err := Open("", "info", pol, &stderr)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	log.Debug("hidden")
	log.Info("shown", "k", "v")
	closeLog()
	out := stderr.String()
	if !strings.Contains(out, "shown") || !strings.Contains(out, "k=v") || strings.Contains(out, "hidden") {
		t.Errorf("stderr = %q", out)
	}
}

func TestOpenFile(t *testing.T) {
	pol, dir := testPolicy(t)
	for _, rel := range []string{"u.log", "sub/dir/u.log"} {
		t.Run(rel, func(t *testing.T) {
			path := filepath.Join(dir, rel)
			var stderr bytes.Buffer
			log, closeLog, err := Open(path, "warning", pol, &stderr)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			log.Info("not at warning level")
			log.Warn("first", "n", 1)
			log.Error("second")
			closeLog()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out := string(data)
			if !strings.Contains(out, "first") || !strings.Contains(out, "n=1") || !strings.Contains(out, "second") ||
				strings.Contains(out, "not at warning level") {
				t.Errorf("log file = %q", out)
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr got %q while logging to a file", stderr.String())
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm()&0o007 != 0 {
				t.Errorf("log file mode %v is accessible to others", fi.Mode())
			}

			// A second Open appends.
			log, closeLog, err = Open(path, "debug", pol, &stderr)
			if err != nil {
				t.Fatalf("second Open: %v", err)
			}
			log.Debug("third")
			closeLog()
			data, _ = os.ReadFile(path)
			if !strings.HasPrefix(string(data), out) || !strings.Contains(string(data), "third") {
				t.Errorf("log not appended: %q", data)
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr got %q", stderr.String())
			}
		})
	}
}

func TestOpenRefused(t *testing.T) {
	pol, dir := testPolicy(t)
	outsideDir := t.TempDir()
	tests := []struct {
		name, path, want string
	}{
		{"outside", filepath.Join(outsideDir, "u.log"), "not under"},
		{"sibling prefix", dir + "x/u.log", "not under"},
		{"dotdot", dir + "/../" + filepath.Base(outsideDir) + "/u.log", ".."},
		{"relative", "u.log", "absolute"},
		{"the dir itself", dir, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			log, closeLog, err := Open(tt.path, "debug", pol, &stderr)
			if err == nil {
				closeLog()
				t.Fatalf("Open(%q) succeeded", tt.path)
			}
			if log != nil || closeLog != nil {
				t.Error("Open returned a logger with an error")
			}
			if !strings.Contains(err.Error(), "logFile") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name logFile and %q", err, tt.want)
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr got %q", stderr.String())
			}
		})
	}
	entries, _ := os.ReadDir(outsideDir)
	if len(entries) != 0 {
		t.Errorf("files created outside the allowed dir: %v", entries)
	}
}

func TestOpenRefusesSymlink(t *testing.T) {
	pol, dir := testPolicy(t)
	outsideDir := t.TempDir()
	outside := filepath.Join(outsideDir, "victim")
	inside := filepath.Join(dir, "other.log")
	for _, f := range []string{outside, inside} {
		if err := os.WriteFile(f, []byte("original\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{
		"to outside":          outside,
		"to inside, absolute": inside,
		"to inside, relative": "other.log",
		"dangling":            "missing.log",
	} {
		t.Run(name, func(t *testing.T) {
			link := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".log")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			log, closeLog, err := Open(link, "debug", pol, &stderr)
			if err == nil {
				log.Error("written through a symlink")
				closeLog()
				t.Fatalf("Open through a symlink (-> %s) succeeded", target)
			}
			if !strings.Contains(err.Error(), "logFile") {
				t.Errorf("error %q does not name logFile", err)
			}
		})
	}
	for _, f := range []string{outside, inside} {
		if data, _ := os.ReadFile(f); string(data) != "original\n" {
			t.Errorf("%s changed: %q", f, data)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "missing.log")); err == nil {
		t.Error("a dangling symlink's target was created")
	}
}

func TestOpenRefusesSymlinkedParentOutside(t *testing.T) {
	pol, dir := testPolicy(t)
	outsideDir := t.TempDir()
	if err := os.Symlink(outsideDir, filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(filepath.Join(dir, "sub", "u.log"), "debug", pol, &bytes.Buffer{}); err == nil {
		t.Error("Open through a parent symlink out of the allowed dir succeeded")
	}
	if entries, _ := os.ReadDir(outsideDir); len(entries) != 0 {
		t.Errorf("files created outside: %v", entries)
	}
}

func TestOpenNotRegular(t *testing.T) {
	pol, dir := testPolicy(t)
	sub := filepath.Join(dir, "adir")
	if err := os.Mkdir(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(sub, "debug", pol, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open of a directory = %v", err)
	}
	// A file where a parent directory should be.
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(filepath.Join(dir, "file", "u.log"), "debug", pol, &bytes.Buffer{}); err == nil {
		t.Error("Open beneath a regular file succeeded")
	}
	// An allowed directory that does not exist.
	gone := &policy.Policy{LogDirs: []string{filepath.Join(dir, "gone")}}
	if _, _, err := Open(filepath.Join(dir, "gone", "u.log"), "debug", gone, &bytes.Buffer{}); err == nil {
		t.Error("Open in a missing allowed dir succeeded")
	}
}
