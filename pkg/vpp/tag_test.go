package vpp_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/userspace-cni/userspace/pkg/vpp"
)

// VPP keeps 63 bytes of a tag; interface names are at most 15 (IFNAMSIZ-1,
// enforced by the CNI skeleton).
const (
	maxTag    = 63
	maxIfName = 15
)

func TestOwnerTag(t *testing.T) {
	longIf := "eth0123456789ab"
	rawMax := strings.Repeat("r", maxTag-len("u0:")-1-maxIfName)
	cases := []struct {
		name, cid, ifName string
		prefix            string
		parses            bool
	}{
		{"hex id", cidHex, "net1", "u1:", true},
		{"hex id, longest ifname", cidHex, longIf, "u1:", true},
		{"short id", "abc", "net1", "u0:", true},
		{"runtime-style id", "k8s_POD_web-0_default_1", "eth0", "u0:", true},
		{"longest raw id", rawMax, longIf, "u0:", true},
		{"raw id one byte too long", rawMax + "r", longIf, "uh:", false},
		{"uppercase hex", strings.ToUpper(cidHex), "net1", "uh:", false},
		{"63 hex digits", cidHex[:63], "net1", "uh:", false},
		{"id with colon", "a:b", "net1", "uh:", false},
		{"long non-hex id", strings.Repeat("not-hex-", 12), "net1", "uh:", false},
		{"empty id", "", "net1", "u0:", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if len(c.ifName) > maxIfName {
				t.Fatalf("bad case: ifname %q", c.ifName)
			}
			tag := vpp.OwnerTag(c.cid, c.ifName)
			if !strings.HasPrefix(tag, c.prefix) {
				t.Errorf("tag %q, want prefix %s", tag, c.prefix)
			}
			if len(tag) > maxTag {
				t.Errorf("tag %q is %d bytes", tag, len(tag))
			}
			if !vpp.IsOwnerTag(tag) {
				t.Errorf("IsOwnerTag(%q) = false", tag)
			}
			if tag != vpp.OwnerTag(c.cid, c.ifName) {
				t.Error("OwnerTag is not deterministic")
			}
			cid, ifName, ok := vpp.ParseOwnerTag(tag)
			if ok != c.parses || ok && (cid != c.cid || ifName != c.ifName) {
				t.Errorf("ParseOwnerTag(%q) = %q, %q, %v; want %q, %q, %v", tag, cid, ifName, ok, c.cid, c.ifName, c.parses)
			}
		})
	}
}

func TestOwnerTagDistinct(t *testing.T) {
	long := strings.Repeat("x", 100)
	seen := map[string]string{}
	for _, cid := range []string{cidHex, cidOther, "abc", "abd", long, long + "y", strings.ToUpper(cidHex)} {
		for _, ifName := range []string{"net1", "net2", "eth0"} {
			tag := vpp.OwnerTag(cid, ifName)
			if prev, dup := seen[tag]; dup {
				t.Errorf("%s/%s and %s share tag %q", cid, ifName, prev, tag)
			}
			seen[tag] = cid + "/" + ifName
		}
	}
}

func TestParseOwnerTagRejects(t *testing.T) {
	hexTag := vpp.OwnerTag(cidHex, "net1")
	b64 := strings.TrimSuffix(strings.TrimPrefix(hexTag, "u1:"), ":net1")
	// Same bytes, another spelling: the two spare bits of the last character.
	last := strings.IndexByte(urlAlphabet, b64[len(b64)-1])
	respelled := "u1:" + b64[:len(b64)-1] + string(urlAlphabet[last^1]) + ":net1"
	for _, tag := range []string{
		"", "foo", vpp.BridgeTag, "u1:", "u1:abc:net1", "u1:" + b64, "u1:" + b64 + ":",
		"u1:" + base64.RawURLEncoding.EncodeToString(make([]byte, 31)) + ":net1",
		"u1:" + b64 + "==:net1", respelled,
		"u0:abc", "u0::net1", "u0:abc:",
		"u0:" + cidHex + ":n", // a 64-hex id is always packed
		vpp.OwnerTag(strings.Repeat("z", 90), "net1"),
	} {
		if cid, ifName, ok := vpp.ParseOwnerTag(tag); ok {
			t.Errorf("ParseOwnerTag(%q) = %q, %q, true", tag, cid, ifName)
		}
	}
	for tag, want := range map[string]bool{"": false, "foo": false, vpp.BridgeTag: false, "u2:x": false, "u0:x:y": true, "u1:": true, "uh:": true} {
		if got := vpp.IsOwnerTag(tag); got != want {
			t.Errorf("IsOwnerTag(%q) = %v", tag, got)
		}
	}
}

const urlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func FuzzOwnerTag(f *testing.F) {
	f.Add(cidHex, "net1")
	f.Add("abc", "eth0")
	f.Add(strings.Repeat("z", 80), "net1")
	f.Add("a:b", "c:d")
	f.Add("", "")
	f.Add("u1:x", "u0:")
	f.Fuzz(func(t *testing.T, cid, ifName string) {
		tag := vpp.OwnerTag(cid, ifName)
		if !vpp.IsOwnerTag(tag) {
			t.Errorf("IsOwnerTag(%q) = false", tag)
		}
		if len(ifName) <= maxIfName && len(tag) > maxTag {
			t.Errorf("tag %q is %d bytes", tag, len(tag))
		}
		gotCid, gotIf, ok := vpp.ParseOwnerTag(tag)
		if ok && (gotCid != cid || gotIf != ifName) {
			t.Errorf("tag %q of %q/%q parses as %q/%q", tag, cid, ifName, gotCid, gotIf)
		}
		// A usable id with a valid ifname is recoverable unless only a
		// digest fits.
		recoverable := cid != "" && ifName != "" && !strings.Contains(cid, ":") &&
			(isLowerHex64(cid) || len("u0:"+cid+":"+ifName) <= maxTag)
		if recoverable && !ok {
			t.Errorf("tag %q of %q/%q does not parse", tag, cid, ifName)
		}
		// Any string taken as a tag: an owner it names maps back to it.
		for _, s := range []string{cid, ifName, cid + ":" + ifName} {
			if c, i, ok := vpp.ParseOwnerTag(s); ok && vpp.OwnerTag(c, i) != s {
				t.Errorf("ParseOwnerTag(%q) = %q/%q, whose tag is %q", s, c, i, vpp.OwnerTag(c, i))
			}
		}
	})
}
