package testbed

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestApp: an app runs as PID 1 of its own PID namespace in the pod's
// network namespace, and Stop takes it and everything it started along.
func TestApp(t *testing.T) {
	requirePackages(t)
	ns, err := NewNetNS("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	a, err := StartApp(ns.Path(), filepath.Join(t.TempDir(), "app.log"), []string{"GREETING=hello"},
		"sh", "-c", `echo "$GREETING pid $$"; sleep 60 & wait`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	out, err := a.WaitOutput(context.Background(), regexp.MustCompile(`hello pid \d+`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`hello pid 1\b`).MatchString(out) {
		t.Errorf("the app is not PID 1 of its namespace: %q", out)
	}
	kids := ChildPIDs(a.PID())
	if !a.Running() || len(kids) != 1 {
		t.Fatalf("running %v, children of the wrapper %v", a.Running(), kids)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if a.Running() || ProcessRunning(kids[0]) {
		t.Errorf("after Stop: wrapper running %v, app running %v", a.Running(), ProcessRunning(kids[0]))
	}
	if err := a.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
