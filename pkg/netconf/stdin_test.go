package netconf

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/userspace-cni/userspace/internal/cnitest"
)

func TestPreprocess(t *testing.T) {
	tests := []struct {
		name, in string
		// wantName is the name after preprocessing; "" with wantErr.
		wantName  string
		unchanged bool
		wantErr   string
	}{
		{"notes config without name", notesExample, DefaultName, false, ""},
		{"named", `{"cniVersion":"1.0.0","name":"net-a"}`, "net-a", true, ""},
		{"empty name", `{"name":""}`, DefaultName, false, ""},
		{"null name", `{"name":null}`, DefaultName, false, ""},
		{"name of another type is left for skel", `{"name":1}`, "", true, ""},
		{"empty object", `{}`, DefaultName, false, ""},
		{"null", `null`, "", false, "must be a JSON object, not null"},
		{"null with spaces", "\n null \t", "", false, "not null"},
		{"number", `1`, "", false, "not a number"},
		{"negative float", `-0.5e3`, "", false, "not a number"},
		{"string", `"x"`, "", false, "not a string"},
		{"array", `[]`, "", false, "not an array"},
		{"array of objects", `[{"name":"a"}]`, "", false, "not an array"},
		{"true", `true`, "", false, "not a boolean"},
		{"false", `false`, "", false, "not a boolean"},
		{"empty", ``, "", false, "empty network configuration"},
		{"blank", " \r\n\t", "", false, "empty network configuration"},
		{"truncated", `{"name":`, "", false, "malformed network configuration"},
		{"two objects", `{} {}`, "", false, "malformed network configuration"},
		{"byte order mark", "\xef\xbb\xbf{}", "", false, "malformed network configuration"},
		{"NUL", "\x00", "", false, "malformed network configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Preprocess([]byte(tt.in))
			if tt.wantErr != "" {
				if out != nil {
					t.Errorf("output %q with an error", out)
				}
				cnitest.CheckError(t, err, types.ErrDecodingFailure, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("Preprocess: %v", err)
			}
			if tt.unchanged && string(out) != tt.in {
				t.Errorf("changed %q to %q", tt.in, out)
			}
			if tt.wantName == "" {
				return
			}
			var c struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(out, &c); err != nil || c.Name != tt.wantName {
				t.Errorf("name %q (%v), want %q", c.Name, err, tt.wantName)
			}
		})
	}
}

// TestPreprocessKeepsFields: naming a configuration changes nothing else.
func TestPreprocessKeepsFields(t *testing.T) {
	in := `{"cniVersion":"0.3.0","type":"userspace","host":{"engine":"ovs-dpdk","iftype":"vhostuser"},"ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]]},"x-<tag>":"a&b"}`
	out, err := Preprocess([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var before, after map[string]any
	if err := json.Unmarshal([]byte(in), &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &after); err != nil {
		t.Fatal(err)
	}
	if after["name"] != DefaultName {
		t.Errorf("name %v", after["name"])
	}
	delete(after, "name")
	a, _ := json.Marshal(before)
	b, _ := json.Marshal(after)
	if !bytes.Equal(a, b) {
		t.Errorf("fields changed:\n%s\n%s", a, b)
	}
}

// Parse refuses what is not an object with the same messages.
func TestParseNotAnObject(t *testing.T) {
	for in, want := range map[string]string{`null`: "not null", `7`: "not a number", `"s"`: "not a string",
		`[1]`: "not an array", `false`: "not a boolean", ``: "empty network configuration", "  ": "empty network configuration"} {
		c, err := Parse([]byte(in))
		if c != nil {
			t.Errorf("Parse(%q) returned a configuration", in)
		}
		cnitest.CheckError(t, err, types.ErrDecodingFailure, want)
	}
}

// FuzzPreprocess: no input panics; what is refused is a CNI decoding
// error; what is accepted is a JSON object whose fields are unchanged
// except a name given to an unnamed configuration, and preprocessing it
// again changes nothing.
func FuzzPreprocess(f *testing.F) {
	for _, seed := range []string{
		notesExample, ovsExample, vppExample,
		`{"name":""}`, `{"name":null}`, `{"name":1}`, `{"name":"a","name":""}`, `{}`,
		`null`, `1`, `-0.5e3`, `"x"`, `[]`, `[{}]`, `true`, `false`, ``, " \n", `{`, `{} {}`, "\xef\xbb\xbf{}", "\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Preprocess(data)
		if err != nil {
			e, ok := err.(*types.Error)
			if !ok || e.Code != types.ErrDecodingFailure || e.Msg == "" {
				t.Fatalf("error %v (%T) is not a CNI decoding error", err, err)
			}
			if out != nil {
				t.Fatalf("output with an error")
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(data, &obj) == nil && obj != nil {
				t.Fatalf("refused a JSON object: %v", err)
			}
			return
		}
		var in, got map[string]json.RawMessage
		if err := json.Unmarshal(data, &in); err != nil || in == nil {
			t.Fatalf("accepted %q, which is not a JSON object", data)
		}
		if err := json.Unmarshal(out, &got); err != nil || got == nil {
			t.Fatalf("output %q is not a JSON object: %v", out, err)
		}
		var name any
		_ = json.Unmarshal(in["name"], &name)
		if s, ok := name.(string); ok && s != "" || name != nil && !ok {
			if !bytes.Equal(out, data) {
				t.Fatalf("a configuration with a name was changed: %q -> %q", data, out)
			}
		} else {
			var n string
			if err := json.Unmarshal(got["name"], &n); err != nil || n != DefaultName {
				t.Fatalf("unnamed configuration got name %s", got["name"])
			}
			if len(got) != len(in)+btoi(in["name"] == nil) {
				t.Fatalf("fields changed: %d -> %d", len(in), len(got))
			}
			for k, v := range in {
				if k == "name" {
					continue
				}
				var a, b bytes.Buffer
				_ = json.Compact(&a, v)
				_ = json.Compact(&b, got[k])
				if !bytes.Equal(a.Bytes(), b.Bytes()) && !strings.ContainsAny(string(v), "<>&\u2028\u2029") {
					t.Fatalf("field %s changed: %s -> %s", k, v, got[k])
				}
			}
		}
		again, err := Preprocess(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("preprocessing again changed %q to %q (%v)", out, again, err)
		}
		// Whatever comes out, the parser answers with a configuration or
		// a CNI error, never a panic.
		if c, err := Parse(out); err == nil {
			checkParsed(t, c)
		} else if _, ok := err.(*types.Error); !ok {
			t.Fatalf("Parse error %v is a %T", err, err)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
