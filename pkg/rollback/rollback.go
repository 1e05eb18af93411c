// Package rollback is a transaction of side effects: each step registers
// how to undo it, and if the whole fails the undo steps run in reverse. ADD
// (pkg/plugin) and the engines' Attach (pkg/ovsdb, pkg/vpp) all use it, so
// a failed attachment is taken back one way.
package rollback

import "errors"

// Tx holds one operation's undo steps. Resources the undo steps use (the
// switch and API connections, a lock) are registered with ReleaseWith and
// released only after the rollback, whatever happens. The zero value is
// ready to use.
type Tx struct {
	undo    []func() error
	clean   []func() error
	release []func()
}

// Undo registers how to undo the step just done.
func (t *Tx) Undo(f func() error) { t.undo = append(t.undo, f) }

// UndoLast registers an undo step that runs after every other one, for a
// resource the others must have left first (a bridge domain only goes once
// it has no members).
func (t *Tx) UndoLast(f func() error) { t.undo = append([]func() error{f}, t.undo...) }

// AfterCleanRollback registers a step that runs only when every undo step
// succeeded: claims on paths and the write-ahead record are given up only
// when the rollback removed everything, so that otherwise the DEL the
// runtime sends next still owns, and removes, what is left.
func (t *Tx) AfterCleanRollback(f func() error) { t.clean = append(t.clean, f) }

// ReleaseWith registers a resource to release after the rollback, or after
// success.
func (t *Tx) ReleaseWith(f func()) { t.release = append(t.release, f) }

// Rollback runs every undo step in reverse, whatever the others return,
// then, if all succeeded, the AfterCleanRollback steps. It returns the
// failures joined.
func (t *Tx) Rollback() error {
	var errs []error
	for i := len(t.undo) - 1; i >= 0; i-- {
		if err := t.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i := len(t.clean) - 1; i >= 0; i-- {
		if err := t.clean[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Release releases the registered resources, last registered first.
func (t *Tx) Release() {
	for i := len(t.release) - 1; i >= 0; i-- {
		t.release[i]()
	}
}
