package netconf

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// DefaultName stands in for a missing "name": the application notes'
// configuration has none, and skel refuses an unnamed network.
const DefaultName = "userspace"

// Preprocess is what the binary does with the network configuration a
// runtime passed on stdin before skel and Parse see it: the configuration
// must be one JSON object, and one without a name (or with a null or empty
// one) is given DefaultName. Anything that is not an object (empty input, a
// scalar, an array, malformed JSON) is a CNI decoding error saying what it
// got, so nothing downstream ever handles a configuration that is not an
// object. A "name" of another JSON type is left for skel to report.
func Preprocess(data []byte) ([]byte, error) {
	obj, err := decodeObject(data)
	if err != nil {
		return nil, err
	}
	if raw, ok := obj["name"]; ok {
		var name *string
		if json.Unmarshal(raw, &name) != nil || name != nil && *name != "" {
			return data, nil
		}
	}
	obj["name"], _ = json.Marshal(DefaultName)
	out, merr := json.Marshal(obj)
	if merr != nil {
		// Every value came out of the decoder, so it encodes again.
		return nil, types.NewError(codeDecode, fmt.Sprintf("re-encoding the network configuration: %v", merr), "")
	}
	return out, nil
}

// decodeObject decodes a network configuration's top level, which must be a
// JSON object.
func decodeObject(data []byte) (map[string]json.RawMessage, *types.Error) {
	if isJSONSpace(data) {
		return nil, types.NewError(codeDecode, "empty network configuration: expected a JSON object", "")
	}
	var obj map[string]json.RawMessage
	err := json.Unmarshal(data, &obj)
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		return nil, notAnObject(typeErr.Value)
	case err != nil:
		return nil, types.NewError(codeDecode, fmt.Sprintf("malformed network configuration: %v", err), "")
	case obj == nil:
		return nil, notAnObject("null")
	}
	return obj, nil
}

func notAnObject(kind string) *types.Error {
	switch kind {
	case "bool":
		kind = "a boolean"
	case "number", "string":
		kind = "a " + kind
	case "array":
		kind = "an array"
	}
	return types.NewError(codeDecode, fmt.Sprintf("the network configuration must be a JSON object, not %s", kind), "")
}

// isJSONSpace reports whether data holds nothing but JSON whitespace.
func isJSONSpace(data []byte) bool { return firstByte(data) < 0 }

// firstByte is the first byte of data that is not JSON whitespace, or -1
// if there is none.
func firstByte(data []byte) int {
	for _, c := range data {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return int(c)
		}
	}
	return -1
}
