package ovsdb

import (
	"fmt"
	"reflect"

	ovs "github.com/ovn-kubernetes/libovsdb/ovsdb"
)

// decodeRow fills a generated model (a pointer to a struct whose fields
// carry `ovsdb:"column"` tags) from a row as OVSDB returns it. Only the
// columns present in the row are set, so selecting a few columns is cheap;
// no schema is needed because the model's Go types say what each column is.
func decodeRow(row ovs.Row, out any) error {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("decodeRow: want a pointer to a model struct, got %T", out)
	}
	v = v.Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		col := t.Field(i).Tag.Get("ovsdb")
		val, ok := row[col]
		if col == "" || !ok {
			continue
		}
		if err := setValue(v.Field(i), val); err != nil {
			return fmt.Errorf("column %s: %w", col, err)
		}
	}
	return nil
}

// setValue converts one OVSDB value (atom, set or map, as libovsdb's Row
// decodes them) into a model field.
func setValue(f reflect.Value, val any) error {
	switch f.Kind() {
	case reflect.Pointer: // optional column: a set of zero or one atom
		elems := setElems(val)
		if len(elems) == 0 {
			f.Set(reflect.Zero(f.Type()))
			return nil
		}
		p := reflect.New(f.Type().Elem())
		if err := setAtom(p.Elem(), elems[0]); err != nil {
			return err
		}
		f.Set(p)
	case reflect.Slice:
		elems := setElems(val)
		s := reflect.MakeSlice(f.Type(), len(elems), len(elems))
		for i, e := range elems {
			if err := setAtom(s.Index(i), e); err != nil {
				return err
			}
		}
		f.Set(s)
	case reflect.Map:
		m, ok := val.(ovs.OvsMap)
		if !ok {
			return fmt.Errorf("want a map, got %T", val)
		}
		out := reflect.MakeMapWithSize(f.Type(), len(m.GoMap))
		for k, e := range m.GoMap {
			kv, ev := reflect.New(f.Type().Key()).Elem(), reflect.New(f.Type().Elem()).Elem()
			if err := setAtom(kv, k); err != nil {
				return err
			}
			if err := setAtom(ev, e); err != nil {
				return err
			}
			out.SetMapIndex(kv, ev)
		}
		f.Set(out)
	default:
		elems := setElems(val)
		if len(elems) == 1 {
			val = elems[0]
		}
		return setAtom(f, val)
	}
	return nil
}

// setElems returns the atoms of a set; OVSDB writes a one-element set as
// the bare atom.
func setElems(val any) []any {
	if s, ok := val.(ovs.OvsSet); ok {
		return s.GoSet
	}
	return []any{val}
}

func setAtom(f reflect.Value, val any) error {
	switch a := val.(type) {
	case ovs.UUID:
		val = a.GoUUID
	case float64: // JSON numbers
		if f.Kind() == reflect.Int {
			f.SetInt(int64(a))
			return nil
		}
		if f.Kind() == reflect.Float64 {
			f.SetFloat(a)
			return nil
		}
	}
	rv := reflect.ValueOf(val)
	if !rv.IsValid() || !rv.Type().ConvertibleTo(f.Type()) || rv.Kind() != f.Kind() {
		return fmt.Errorf("cannot store %T %v in %s", val, val, f.Type())
	}
	f.Set(rv.Convert(f.Type()))
	return nil
}
