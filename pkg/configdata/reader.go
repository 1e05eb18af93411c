package configdata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/utils"

	"github.com/userspace-cni/userspace/pkg/netconf"
)

// Defaults for apps in pods.
const (
	// DefaultAnnotationsFile is where pod specs mount the downward-API
	// annotations file.
	DefaultAnnotationsFile = "/etc/podinfo/annotations"
	// AnnotationMappedDirLegacy is the spelling published pod examples set
	// by hand; the plugin writes AnnotationMappedDir.
	AnnotationMappedDirLegacy = "userspace/mappedDir"
	// DefaultPoll is how often Load looks again while it waits.
	DefaultPoll = 200 * time.Millisecond
	// maxInput bounds what a reader takes from a file: the annotations of a
	// pod are at most 256 KiB, so anything larger is not ours.
	maxInput = 1 << 20
)

// Attachment is one attachment as a pod app uses it: the published config
// data and the socket's path inside the pod.
type Attachment struct {
	ConfigData
	// SocketPath is where the pod reaches the socket.
	SocketPath string
	// Source names where the entry came from, for messages.
	Source string
}

// SocketFile is the socket file name the plugin published for the
// attachment's interface type.
func (d *ConfigData) SocketFile() string { return d.Config.SocketFile() }

// ResultMAC is the MAC the runtime asked for, which the plugin reports on
// the pod's interface in the result; empty when none was asked for.
func (d *ConfigData) ResultMAC() string {
	if d.IPResult == nil {
		return ""
	}
	for _, i := range d.IPResult.Interfaces {
		if i != nil && i.Name == d.IfName {
			return i.Mac
		}
	}
	return ""
}

// Options say where Load reads and how long it waits.
type Options struct {
	// AnnotationsFile is a downward-API annotations file. Used when Dir is
	// empty.
	AnnotationsFile string
	// Dir holds configData-*.json files (the pod's mapped directory, or its
	// own directory in the notes' layout); sockets are resolved in it.
	Dir string
	// NotesDataDir holds the notes' remote-/addData- files, whose sockets
	// are in NotesSocketDir (DefaultNotesSocketDir when empty).
	NotesDataDir   string
	NotesSocketDir string
	// IfNames are the interfaces to wait for; empty means at least one.
	IfNames []string
	// Wait bounds how long Load waits for missing entries: the kubelet
	// refreshes the annotations file some time after ADD.
	Wait time.Duration
	// Poll is the interval between reads (DefaultPoll when zero).
	Poll time.Duration
}

// Load reads the pod's attachments, waiting up to o.Wait for the ones it
// wants to appear. The result is sorted by interface name.
func Load(ctx context.Context, o Options) ([]Attachment, error) {
	var read func() ([]Attachment, error)
	var what string
	switch {
	case o.Dir != "":
		read, what = func() ([]Attachment, error) { return ReadDir(o.Dir) }, o.Dir
	case o.NotesDataDir != "":
		sockets := o.NotesSocketDir
		if sockets == "" {
			sockets = DefaultNotesSocketDir
		}
		read, what = func() ([]Attachment, error) { return ReadNotesDir(o.NotesDataDir, sockets) }, o.NotesDataDir
	case o.AnnotationsFile != "":
		read, what = func() ([]Attachment, error) { return ReadAnnotationsFile(o.AnnotationsFile) }, o.AnnotationsFile
	default:
		return nil, errors.New("no source: give an annotations file, a config-data directory or a notes data directory")
	}
	poll := o.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	ctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	for {
		atts, err := read()
		missing := missingIfNames(atts, o.IfNames)
		// A malformed file is final: the kubelet writes whole files, so
		// waiting does not repair it. A missing one may yet appear.
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if err == nil && len(missing) == 0 {
			return filter(atts, o.IfNames), nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return nil, fmt.Errorf("no attachments after %s: %w", o.Wait, err)
			}
			if len(o.IfNames) == 0 {
				return nil, fmt.Errorf("no attachments in %s after %s", what, o.Wait)
			}
			return nil, fmt.Errorf("no attachment for %s in %s after %s", strings.Join(missing, ", "), what, o.Wait)
		case <-time.After(poll):
		}
	}
}

func missingIfNames(atts []Attachment, want []string) []string {
	if len(want) == 0 {
		if len(atts) == 0 {
			return []string{"any interface"}
		}
		return nil
	}
	var missing []string
	for _, w := range want {
		if !hasIfName(atts, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

func hasIfName(atts []Attachment, ifName string) bool {
	for _, a := range atts {
		if a.IfName == ifName {
			return true
		}
	}
	return false
}

func filter(atts []Attachment, want []string) []Attachment {
	if len(want) == 0 {
		return atts
	}
	var out []Attachment
	for _, a := range atts {
		for _, w := range want {
			if a.IfName == w {
				out = append(out, a)
			}
		}
	}
	return out
}

// ParseAnnotations parses a downward-API annotations file: one
// key="value" per line, the value quoted as Go quotes strings (what the
// kubelet writes).
func ParseAnnotations(data []byte) (map[string]string, error) {
	out := map[string]string{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, quoted, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("line %d: want key=\"value\", got %.60q", n+1, line)
		}
		value, err := strconv.Unquote(quoted)
		if err != nil || !strings.HasPrefix(quoted, `"`) {
			return nil, fmt.Errorf("line %d: value of %q is not a quoted string: %.60q", n+1, key, quoted)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("line %d: annotation %q appears twice", n+1, key)
		}
		out[key] = value
	}
	return out, nil
}

// ReadAnnotationsFile reads the attachments from a downward-API annotations
// file. A file without the config-data annotation holds no attachments yet.
func ReadAnnotationsFile(file string) ([]Attachment, error) {
	data, err := readBounded(file)
	if err != nil {
		return nil, err
	}
	ann, err := ParseAnnotations(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return FromAnnotations(ann, file)
}

// FromAnnotations decodes the config-data annotation and resolves each
// socket under the mapped directory the pod was annotated with.
func FromAnnotations(ann map[string]string, source string) ([]Attachment, error) {
	raw, ok := ann[AnnotationConfigData]
	if !ok {
		return nil, nil
	}
	mapped := ann[AnnotationMappedDir]
	if mapped == "" {
		mapped = ann[AnnotationMappedDirLegacy]
	}
	if mapped == "" {
		mapped = DefaultMappedDir
	}
	if err := checkDir(mapped); err != nil {
		return nil, fmt.Errorf("%s: annotation %s: %w", source, AnnotationMappedDir, err)
	}
	var list []ConfigData
	dec := json.NewDecoder(strings.NewReader(raw))
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("%s: annotation %s is not a JSON list of attachments: %w", source, AnnotationConfigData, err)
	}
	atts := make([]Attachment, 0, len(list))
	for i := range list {
		a, err := resolve(list[i], mapped, source)
		if err != nil {
			return nil, fmt.Errorf("%s: annotation %s entry %d: %w", source, AnnotationConfigData, i, err)
		}
		atts = append(atts, a)
	}
	return sorted(atts, source)
}

// ReadDir reads the configData-*.json files in a directory; sockets are
// resolved in the same directory, where the plugin put them.
func ReadDir(dir string) ([]Attachment, error) {
	if err := checkDir(dir); err != nil {
		return nil, fmt.Errorf("config-data directory: %w", err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "configData-*.json"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, err
		}
	}
	var atts []Attachment
	for _, name := range names {
		var d ConfigData
		if err := decodeFile(name, &d); err != nil {
			return nil, err
		}
		a, err := resolve(d, dir, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		atts = append(atts, a)
	}
	return sorted(atts, dir)
}

// resolve checks one entry's names and joins its socket to dir. The values
// come from annotations anyone who may edit the pod can change, so names
// that would leave dir are refused, not cleaned.
func resolve(d ConfigData, dir, source string) (Attachment, error) {
	if err := utils.ValidateInterfaceName(d.IfName); err != nil {
		return Attachment{}, fmt.Errorf("ifName %q: %s", d.IfName, err.Msg)
	}
	switch d.Config.IfType {
	case netconf.IfTypeVhostUser, netconf.IfTypeMemif:
	default:
		return Attachment{}, fmt.Errorf("interface %s: config.iftype %q: must be %q or %q", d.IfName, d.Config.IfType, netconf.IfTypeVhostUser, netconf.IfTypeMemif)
	}
	name := d.SocketFile()
	if err := netconf.ValidateSocketfile(name); err != nil {
		return Attachment{}, fmt.Errorf("interface %s: config.%s.socketfile %q: %w", d.IfName, sideKey(d.Config.IfType), name, err)
	}
	// Ring and buffer sizes and queue counts end up in VPP's and DPDK's
	// narrower integer types: out of range, they would wrap around.
	if d.Config.IfType == netconf.IfTypeMemif {
		if err := d.Config.Memif.Validate("config.memif"); err != nil {
			return Attachment{}, fmt.Errorf("interface %s: %w", d.IfName, err)
		}
	}
	return Attachment{ConfigData: d, SocketPath: path.Join(dir, name), Source: source}, nil
}

func sideKey(ifType string) string {
	if ifType == netconf.IfTypeMemif {
		return "memif"
	}
	return "vhost"
}

func sorted(atts []Attachment, source string) ([]Attachment, error) {
	sort.Slice(atts, func(i, j int) bool { return atts[i].IfName < atts[j].IfName })
	for i := 1; i < len(atts); i++ {
		if atts[i].IfName == atts[i-1].IfName {
			return nil, fmt.Errorf("%s: two attachments for interface %s", source, atts[i].IfName)
		}
	}
	return atts, nil
}

// checkDir accepts only absolute, clean directories: a relative or dotted
// mapped-dir would make the socket path depend on the app's working
// directory or climb out of the volume.
func checkDir(dir string) error {
	if !path.IsAbs(dir) || path.Clean(dir) != strings.TrimSuffix(dir, "/") && dir != "/" {
		return fmt.Errorf("%q must be an absolute, clean path", dir)
	}
	return nil
}

func readBounded(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("%s is larger than %d bytes", file, maxInput)
	}
	return bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), nil
}

// notesRemote is the part of remote-<ifName>.json a pod app uses: the
// whole network configuration, of which the container side applies.
type notesRemote struct {
	Name      string                `json:"name"`
	Container netconf.UserSpaceConf `json:"container"`
}

// ReadNotesDir reads the notes' remote-/addData- pairs in dataDir and
// resolves each socket in socketDir.
func ReadNotesDir(dataDir, socketDir string) ([]Attachment, error) {
	for _, d := range []string{dataDir, socketDir} {
		if err := checkDir(d); err != nil {
			return nil, fmt.Errorf("notes directory: %w", err)
		}
	}
	names, err := filepath.Glob(filepath.Join(dataDir, NotesAddDataFile("*")))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if _, err := os.Stat(dataDir); err != nil {
			return nil, err
		}
	}
	var atts []Attachment
	for _, name := range names {
		var add NotesAddData
		if err := decodeFile(name, &add); err != nil {
			return nil, err
		}
		ifName := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(name), notesAddDataPrefix), notesSuffix)
		if add.IfName != ifName {
			return nil, fmt.Errorf("%s: ifName %q does not match the file name", name, add.IfName)
		}
		remoteFile := filepath.Join(dataDir, NotesRemoteFile(ifName))
		var remote notesRemote
		if err := decodeFile(remoteFile, &remote); err != nil {
			return nil, err
		}
		d := ConfigData{ContainerID: add.ContainerID, IfName: add.IfName, Name: remote.Name, Config: remote.Container, IPResult: add.IPResult}
		a, err := resolve(d, socketDir, remoteFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", remoteFile, err)
		}
		atts = append(atts, a)
	}
	return sorted(atts, dataDir)
}

func decodeFile(name string, v any) error {
	data, err := readBounded(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
