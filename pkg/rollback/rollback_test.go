package rollback

import (
	"errors"
	"slices"
	"testing"
)

func TestOrder(t *testing.T) {
	var ran []string
	step := func(name string, err error) func() error {
		return func() error { ran = append(ran, name); return err }
	}
	var tx Tx
	tx.ReleaseWith(func() { ran = append(ran, "release1") })
	tx.AfterCleanRollback(step("clean", nil))
	tx.Undo(step("undo1", nil))
	tx.UndoLast(step("last", nil))
	tx.Undo(step("undo2", nil))
	tx.ReleaseWith(func() { ran = append(ran, "release2") })
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	tx.Release()
	want := []string{"undo2", "undo1", "last", "clean", "release2", "release1"}
	if !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
}

// TestFailedUndo: every undo step runs despite a failure, and the steps
// kept for a clean rollback do not.
func TestFailedUndo(t *testing.T) {
	var ran []string
	step := func(name string, err error) func() error {
		return func() error { ran = append(ran, name); return err }
	}
	e1, e2 := errors.New("one"), errors.New("two")
	var tx Tx
	tx.AfterCleanRollback(step("clean", nil))
	tx.Undo(step("undo1", e1))
	tx.Undo(step("undo2", e2))
	err := tx.Rollback()
	if !errors.Is(err, e1) || !errors.Is(err, e2) {
		t.Errorf("Rollback() = %v, want both failures", err)
	}
	if want := []string{"undo2", "undo1"}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
}
