package plugin

import (
	"errors"
	"fmt"
	"log/slog"
)

// tx is one ADD's side effects. Each step registers how to undo it; if ADD
// fails, the undo steps run in reverse. Resources the undo steps use (the
// switch and API connections, the sandbox lock) are registered with
// releaseWith and released only after the rollback, whatever happens.
// Claims on paths go with afterCleanRollback: given up only when the rollback
// removed everything, so that otherwise the DEL the runtime sends next still
// owns, and removes, what is left.
type tx struct {
	log     *slog.Logger
	undo    []func() error
	clean   []func() error
	release []func()
}

func (t *tx) undoWith(f func() error)           { t.undo = append(t.undo, f) }
func (t *tx) afterCleanRollback(f func() error) { t.clean = append(t.clean, f) }
func (t *tx) releaseWith(f func())              { t.release = append(t.release, f) }

// finish rolls back if *err is set, then releases the resources.
func (t *tx) finish(err *error) {
	if *err != nil {
		if uerr := t.rollback(); uerr != nil {
			t.log.Error("rollback of failed ADD incomplete: DEL will remove the rest", "error", uerr)
			*err = fmt.Errorf("%w (rollback also failed: %v)", *err, uerr)
		}
	}
	for i := len(t.release) - 1; i >= 0; i-- {
		t.release[i]()
	}
}

func (t *tx) rollback() error {
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
