package ovsdb

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"

	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"
)

// This file writes OVSDB requests as JSON (RFC 7047) by appending bytes.
// libovsdb's MarshalJSON methods each call json.Marshal on a fresh
// anonymous type or []any, and the outer encoder then re-validates every
// nested result: for one ADD's two transactions that reflection and copying
// cost about 20 page faults and a few per cent of the process's CPU
// (issue 13). Values of types this does not know go through encoding/json,
// so the output is what json.Marshal would send, up to key order.

// appendRequest appends a JSON-RPC 1.0 request.
func appendRequest(b []byte, id int, method string, params []any) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, `,"method":`...)
	b = appendString(b, method)
	b = append(b, `,"params":`...)
	b, err := appendValue(b, params)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendValue appends one value: an operation, an OVSDB atom, set, map,
// UUID, condition or mutation, or a list of them.
func appendValue(b []byte, v any) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case ovs.UUID:
		kind := "named-uuid"
		if ovs.IsValidUUID(x.GoUUID) {
			kind = "uuid"
		}
		return append(appendString(append(appendString(append(b, '['), kind), ','), x.GoUUID), ']'), nil
	case ovs.OvsSet:
		if len(x.GoSet) == 1 {
			return appendValue(b, x.GoSet[0])
		}
		b = append(b, `["set",`...)
		if b, err = appendList(b, x.GoSet); err != nil {
			return nil, err
		}
		return append(b, ']'), nil
	case ovs.OvsMap:
		return appendMap(b, x)
	case ovs.Condition:
		return appendList(b, []any{x.Column, string(x.Function), x.Value})
	case ovs.Mutation:
		return appendList(b, []any{x.Column, string(x.Mutator), x.Value})
	case ovs.Operation:
		return appendOperation(b, x)
	case []any:
		return appendList(b, x)
	default:
		enc, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return append(b, enc...), nil
	}
}

func appendList(b []byte, xs []any) ([]byte, error) {
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendValue(b, x); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

// appendMap appends ["map", [[key, value], ...]], its pairs in the order of
// their encoded keys so that one request always encodes alike.
func appendMap(b []byte, m ovs.OvsMap) ([]byte, error) {
	type pair struct{ k, v []byte }
	pairs := make([]pair, 0, len(m.GoMap))
	for k, v := range m.GoMap {
		kb, err := appendValue(nil, k)
		if err != nil {
			return nil, err
		}
		vb, err := appendValue(nil, v)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, pair{kb, vb})
	}
	slices.SortFunc(pairs, func(x, y pair) int { return slices.Compare(x.k, y.k) })
	b = append(b, `["map",[`...)
	for i, p := range pairs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(append(append(b, '['), p.k...), ','), p.v...), ']')
	}
	return append(b, "]]"...), nil
}

// appendOperation appends an operation with libovsdb's field names and
// omissions: empty fields are left out, except a select's where, which
// selects every row when empty.
func appendOperation(b []byte, op ovs.Operation) ([]byte, error) {
	b = append(b, `{"op":`...)
	b = appendString(b, op.Op)
	var err error
	field := func(name string, v any) {
		if err != nil {
			return
		}
		b = appendString(append(b, ','), name)
		b = append(b, ':')
		b, err = appendValue(b, v)
	}
	if op.Table != "" {
		field("table", op.Table)
	}
	if len(op.Row) > 0 {
		b = append(b, `,"row":`...)
		if b, err = appendRow(b, op.Row); err != nil {
			return nil, err
		}
	}
	if len(op.Rows) > 0 {
		b = append(b, `,"rows":[`...)
		for i, r := range op.Rows {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendRow(b, r); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	if len(op.Columns) > 0 {
		field("columns", toAny(op.Columns))
	}
	if len(op.Mutations) > 0 {
		field("mutations", toAny(op.Mutations))
	}
	if op.Timeout != nil {
		field("timeout", *op.Timeout)
	}
	if len(op.Where) > 0 || op.Op == ovs.OperationSelect {
		field("where", toAny(op.Where))
	}
	if op.Until != "" {
		field("until", op.Until)
	}
	if op.Durable != nil {
		field("durable", *op.Durable)
	}
	if op.Comment != nil {
		field("comment", *op.Comment)
	}
	if op.Lock != nil {
		field("lock", *op.Lock)
	}
	if op.UUID != "" {
		field("uuid", op.UUID)
	}
	if op.UUIDName != "" {
		field("uuid-name", op.UUIDName)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding OVSDB %s on %s: %w", op.Op, op.Table, err)
	}
	return append(b, '}'), nil
}

// appendRow appends a row's columns in name order.
func appendRow(b []byte, r ovs.Row) ([]byte, error) {
	b = append(b, '{')
	for i, col := range slices.Sorted(maps.Keys(r)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, col), ':')
		var err error
		if b, err = appendValue(b, r[col]); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func toAny[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// appendString appends s as a JSON string, escaped by encoding/json
// (a string needs no reflection cache, and cannot fail to encode).
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}
