package testbed

import (
	"path/filepath"
	"sync"
	"time"
)

// NetNS is a named network namespace ("pod") created with ip netns add.
type NetNS struct {
	Name string

	once sync.Once
	err  error
}

// NewNetNS creates the named network namespace /var/run/netns/<name> and
// brings its loopback up. An empty name picks a unique "usp-test-<random>";
// tests should always use unique names since namespaces outlive a crashed
// test run.
func NewNetNS(name string) (*NetNS, error) {
	if name == "" {
		name = UniqueName("usp-test")
	}
	if _, err := run(10*time.Second, nil, "ip", "netns", "add", name); err != nil {
		return nil, err
	}
	if _, err := run(10*time.Second, nil, "ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		_, _ = run(10*time.Second, nil, "ip", "netns", "delete", name)
		return nil, err
	}
	return &NetNS{Name: name}, nil
}

// Path is the bind-mounted namespace file, usable with setns(2), nsenter
// --net= and as a CNI netns path.
func (n *NetNS) Path() string { return filepath.Join("/var/run/netns", n.Name) }

// Close deletes the namespace; it is safe to call more than once.
func (n *NetNS) Close() error {
	n.once.Do(func() {
		_, n.err = run(10*time.Second, nil, "ip", "netns", "delete", n.Name)
	})
	return n.err
}
