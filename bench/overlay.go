package bench

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// A spawned cotd's config is what cotbench writes (ports, certificates, the [spawn] keys)
// with the scenario's [spawn.cotd] table and the command line's --set KEY=VALUE laid over
// it: any key of cotd's config, by its dotted path (output.coalesce_delay,
// store.driver, …), without cotbench knowing it. cotd's own strict decoding checks the
// result before cotd starts, so a misspelt key or a bad value stops the run with cotd's
// message.

// ownedKeys are the keys cotbench must set itself, each with why: the listeners are on
// port 0 and the run learns the ports from cotd's JSON ready line, and the clients trust
// the certificates it made.
var ownedKeys = []struct{ key, why string }{
	{"tcp.addr", "it asks for port 0 and reads the bound port from cotd's log"},
	{"tls.addr", "it asks for port 0 and reads the bound port from cotd's log"},
	{"admin.addr", "it asks for port 0 and reads the bound port from cotd's log"},
	{"tls.cert", "it makes the certificates"},
	{"tls.key", "it makes the certificates"},
	{"tls.ca", "it makes the certificates"},
	{"log.format", "it reads the bound ports from cotd's JSON log"},
}

// ParseSetting turns one --set argument, KEY=VALUE, into its dotted key and its value. The
// value is read as a TOML value (16384, true, "1ms", [1, 2]); anything that is not one is
// taken as a string, so that --set output.coalesce_delay=1ms needs no quotes.
func ParseSetting(arg string) (key string, val any, err error) {
	key, text, ok := strings.Cut(arg, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return "", nil, fmt.Errorf("%w: --set %q: want KEY=VALUE, e.g. output.coalesce_delay=1ms", ErrScenario, arg)
	}
	for _, part := range strings.Split(key, ".") {
		if part == "" {
			return "", nil, fmt.Errorf("%w: --set %q: empty part in the key %q", ErrScenario, arg, key)
		}
	}
	var doc map[string]any
	if _, err := toml.Decode("v = "+text, &doc); err == nil {
		return key, doc["v"], nil
	}
	return key, text, nil
}

// setPath puts val at the dotted key in the nested table m, making the tables on the way
// (a value in the way is replaced by a table).
func setPath(m map[string]any, key string, val any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = make(map[string]any)
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = val
}

// flatten lists the leaves of a nested table as "dotted.key = value", sorted: how the
// report names the settings a run had.
func flatten(m map[string]any) []string {
	var out []string
	walkLeaves(m, "", func(key string, v any) { out = append(out, key+" = "+tomlValue(v)) })
	return out
}

// walkLeaves calls fn with the dotted key (under prefix) and the value of every leaf of the
// nested table m, in key order.
func walkLeaves(m map[string]any, prefix string, fn func(key string, v any)) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		if sub, ok := m[k].(map[string]any); ok {
			walkLeaves(sub, path, fn)
			continue
		}
		fn(path, m[k])
	}
}

func tomlValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(map[string]any{"v": v}); err == nil {
		return strings.TrimSpace(strings.TrimPrefix(b.String(), "v = "))
	}
	return fmt.Sprint(v)
}

// checkOverlay reports the keys of a [spawn.cotd] overlay that cotbench owns.
func checkOverlay(m map[string]any) []error {
	var errs []error
	walkLeaves(m, "", func(key string, _ any) {
		for _, owned := range ownedKeys {
			if key == owned.key || strings.HasPrefix(owned.key, key+".") {
				errs = append(errs, fmt.Errorf("spawn.cotd.%s: cotbench sets %s itself (%s)", key, owned.key, owned.why))
			}
		}
	})
	// A table replaced by a value (spawn.cotd.tls = 1) also takes what cotbench owns.
	for _, owned := range ownedKeys {
		top, _, _ := strings.Cut(owned.key, ".")
		if v, ok := m[top]; ok {
			if _, isTable := v.(map[string]any); !isTable {
				errs = append(errs, fmt.Errorf("spawn.cotd.%s must be a table: cotbench sets %s in it", top, owned.key))
			}
		}
	}
	return errs
}

// overlayConfig lays over on the TOML config base: tables merge key by key, anything else
// replaces. The result is re-encoded; comments in base are lost, so a header says where the
// config came from.
func overlayConfig(base []byte, over map[string]any) ([]byte, error) {
	if len(over) == 0 {
		return base, nil
	}
	var m map[string]any
	if _, err := toml.Decode(string(base), &m); err != nil {
		return nil, err
	}
	merge(m, over)
	var b bytes.Buffer
	b.WriteString("# Written by cotbench for one run, with these settings of the scenario's [spawn.cotd] and --set:\n")
	for _, kv := range flatten(over) {
		b.WriteString("#   " + kv + "\n")
	}
	b.WriteString("\n")
	if err := toml.NewEncoder(&b).Encode(m); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				merge(dv, sv)
				continue
			}
			cp := make(map[string]any, len(sv))
			merge(cp, sv)
			dst[k] = cp
			continue
		}
		dst[k] = v
	}
}
