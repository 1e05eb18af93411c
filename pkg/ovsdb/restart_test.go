package ovsdb

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestRemoveDeadServerSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "port")
	rec := func(typ string) json.RawMessage {
		data, err := json.Marshal(record{Type: typ, Port: "port", SwitchSocket: path})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	if got, err := RemoveDeadServerSocket(rec(TypeVhostServer)); err != nil || got != "" {
		t.Fatalf("a live socket: removed %q, %v", got, err)
	}
	_ = l.Close() // the file stays, as a killed switch leaves it
	if got, err := RemoveDeadServerSocket(rec(TypeVhostClient)); err != nil || got != "" {
		t.Fatalf("a client-mode record: removed %q, %v", got, err)
	}
	if got, err := RemoveDeadServerSocket(rec(TypeVhostServer)); err != nil || got != path {
		t.Fatalf("a dead socket: removed %q, %v", got, err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("the dead socket is still there: %v", err)
	}
	if got, err := RemoveDeadServerSocket(rec(TypeVhostServer)); err != nil || got != "" {
		t.Fatalf("nothing there: removed %q, %v", got, err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := RemoveDeadServerSocket(rec(TypeVhostServer)); err != nil || got != "" {
		t.Fatalf("a regular file: removed %q, %v", got, err)
	}
	if _, err := RemoveDeadServerSocket(json.RawMessage(`{`)); err == nil {
		t.Fatal("an unreadable record: no error")
	}
}
