package bench

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"

	"github.com/BurntSushi/toml"
)

// decodeStrict decodes TOML data into the struct dst points to, field by field, and returns
// every problem instead of stopping at the first: unknown keys, values of the wrong type
// and values a field's UnmarshalText refuses, each naming its key, in file order. Fields
// are matched by their toml tag; supported kinds are structs (tables), map[string]any (a
// table kept as it is), strings, bools, ints, float64 and encoding.TextUnmarshaler (given strings; bare numbers are passed as text so
// that a Duration can say it needs a unit). A syntax error is the one error returned.
func decodeStrict(data []byte, dst any) []error {
	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return []error{err}
	}
	var errs []keyError
	decodeTable("", raw, reflect.ValueOf(dst).Elem(), &errs)
	order := make(map[string]int)
	for i, k := range md.Keys() {
		order[k.String()] = i
	}
	sort.SliceStable(errs, func(i, j int) bool { return order[errs[i].key] < order[errs[j].key] })
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e.err
	}
	return out
}

type keyError struct {
	key string
	err error
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func decodeTable(prefix string, m map[string]any, v reflect.Value, errs *[]keyError) {
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("toml"); tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	for key, val := range m {
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		i, ok := fields[key]
		if !ok {
			*errs = append(*errs, keyError{path, fmt.Errorf("unknown key %q", path)})
			continue
		}
		if err := decodeValue(path, val, v.Field(i), errs); err != nil {
			*errs = append(*errs, keyError{path, fmt.Errorf("%s: %w", path, err)})
		}
	}
}

func decodeValue(path string, val any, f reflect.Value, errs *[]keyError) error {
	if f.Addr().Type().Implements(textUnmarshaler) {
		var s string
		switch x := val.(type) {
		case string:
			s = x
		case int64:
			s = strconv.FormatInt(x, 10)
		case float64:
			s = strconv.FormatFloat(x, 'g', -1, 64)
		default:
			return fmt.Errorf("want a string, got %s", tomlType(val))
		}
		if err := f.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return err
		}
		// configs.Duration records a bad value instead of failing (so that
		// configs can report every one); it says so through Problem.
		if p, ok := f.Interface().(interface{ Problem() error }); ok {
			return p.Problem()
		}
		return nil
	}
	switch f.Kind() {
	case reflect.Struct:
		m, ok := val.(map[string]any)
		if !ok {
			return fmt.Errorf("want a table, got %s", tomlType(val))
		}
		decodeTable(path, m, f, errs)
	case reflect.String:
		s, ok := val.(string)
		if !ok {
			return fmt.Errorf("want a string, got %s", tomlType(val))
		}
		f.SetString(s)
	case reflect.Map:
		// A free-form table (spawn.cotd): kept as decoded, checked by whoever reads it.
		m, ok := val.(map[string]any)
		if !ok || f.Type() != reflect.TypeFor[map[string]any]() {
			return fmt.Errorf("want a table, got %s", tomlType(val))
		}
		f.Set(reflect.ValueOf(m))
	case reflect.Bool:
		b, ok := val.(bool)
		if !ok {
			return fmt.Errorf("want true or false, got %s", tomlType(val))
		}
		f.SetBool(b)
	case reflect.Int:
		n, ok := val.(int64)
		if !ok {
			return fmt.Errorf("want an integer, got %s", tomlType(val))
		}
		if f.OverflowInt(n) {
			return fmt.Errorf("%d is out of range", n)
		}
		f.SetInt(n)
	case reflect.Float64:
		switch x := val.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("want a finite number, got %v", x)
			}
			f.SetFloat(x)
		case int64:
			f.SetFloat(float64(x))
		default:
			return fmt.Errorf("want a number, got %s", tomlType(val))
		}
	default:
		// A programming error in the scenario types, not in the file.
		panic("bench: decodeStrict cannot decode into " + f.Type().String())
	}
	return nil
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
