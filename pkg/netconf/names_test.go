package netconf

import (
	"regexp"
	"testing"
)

// The hand-written name checks must accept exactly what these expressions
// (their specification) accept.
var (
	socketfileSpec = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	bridgeSpec     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$`)
	groupSpec      = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}\$?|[0-9]{1,10})$`)
)

func checkNames(t *testing.T, s string) {
	if got, want := isPortableName(s, 64), socketfileSpec.MatchString(s); got != want {
		t.Errorf("isPortableName(%q, 64) = %v, want %v", s, got, want)
	}
	if got, want := isPortableName(s, 15), bridgeSpec.MatchString(s); got != want {
		t.Errorf("isPortableName(%q, 15) = %v, want %v", s, got, want)
	}
	if got, want := isGroup(s), groupSpec.MatchString(s); got != want {
		t.Errorf("isGroup(%q) = %v, want %v", s, got, want)
	}
}

func TestNameChecks(t *testing.T) {
	for _, s := range []string{"", "a", "A", "0", "_", "-a", ".a", "a.b-c_d", "a/b", "a..b", "..", "$", "a$", "_a$",
		"abcdefghijklmno", "abcdefghijklmnop", "0123456789", "01234567890", "12a", "Ab", "a$b", "a b", "é",
		"abcdefghijklmnopqrstuvwxyz0123456", "abcdefghijklmnopqrstuvwxyz012345$", "abcdefghijklmnopqrstuvwxyz01234567",
		string(make([]byte, 64)), "x" + string(make([]byte, 63))} {
		checkNames(t, s)
	}
	long := ""
	for i := 0; i < 66; i++ {
		long += "a"
		checkNames(t, long)
	}
}

func FuzzNameChecks(f *testing.F) {
	for _, s := range []string{"a.b-c_d", "_a$", "0123", "a/b", ""} {
		f.Add(s)
	}
	f.Fuzz(checkNames)
}
