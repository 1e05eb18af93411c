package vpp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// VPP interface tags hold at most 63 bytes. The plugin's tag says which
// attachment an interface belongs to, so DEL, CHECK and GC find it by tag
// and never by a remembered sw_if_index (VPP reuses indexes, and loses them
// all on restart).
const maxTag = 63

const (
	// A 64-hex container id (every common runtime's) packed in base64: the
	// full id fits with any interface name (at most 15 bytes).
	tagHexID = "u1:"
	// A short container id of another form, verbatim.
	tagRawID = "u0:"
	// Anything longer: a digest. DEL still finds it (it recomputes the
	// tag); GC cannot name its owner and leaves it alone.
	tagDigest = "uh:"
)

// BridgeTag marks bridge domains the plugin created, so DEL removes only
// those (and only once empty).
const BridgeTag = "userspace-cni"

// OwnerTag is the tag of an attachment's interface.
func OwnerTag(containerID, ifName string) string {
	if len(containerID) == 64 {
		if raw, err := hex.DecodeString(containerID); err == nil && strings.ToLower(containerID) == containerID {
			return tagHexID + base64.RawURLEncoding.EncodeToString(raw) + ":" + ifName
		}
	}
	if t := tagRawID + containerID + ":" + ifName; len(t) <= maxTag && !strings.Contains(containerID, ":") {
		return t
	}
	sum := sha256.Sum256([]byte(containerID + "\x00" + ifName))
	return tagDigest + hex.EncodeToString(sum[:24])
}

// ParseOwnerTag recovers the attachment from a tag; ok is false for tags
// that are not the plugin's or that name no recoverable owner.
func ParseOwnerTag(tag string) (containerID, ifName string, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(tag, tagHexID):
		rest = tag[len(tagHexID):]
		i := strings.IndexByte(rest, ':')
		if i < 0 {
			return "", "", false
		}
		raw, err := base64.RawURLEncoding.DecodeString(rest[:i])
		if err != nil || len(raw) != 32 {
			return "", "", false
		}
		containerID, ifName = hex.EncodeToString(raw), rest[i+1:]
	case strings.HasPrefix(tag, tagRawID):
		rest = tag[len(tagRawID):]
		i := strings.IndexByte(rest, ':')
		if i < 0 {
			return "", "", false
		}
		containerID, ifName = rest[:i], rest[i+1:]
	default:
		return "", "", false
	}
	if containerID == "" || ifName == "" || OwnerTag(containerID, ifName) != tag {
		return "", "", false
	}
	return containerID, ifName, true
}

// IsOwnerTag reports whether a tag is the plugin's, recoverable or not.
func IsOwnerTag(tag string) bool {
	return strings.HasPrefix(tag, tagHexID) || strings.HasPrefix(tag, tagRawID) || strings.HasPrefix(tag, tagDigest)
}
