package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	// A command name with a space and a ')' in it, as a process can set.
	line := "4242 (cotd (x) y) S 1 4242 4242 0 -1 4194560 3000 0 0 0 250 75 0 0 20 0 12 0 " +
		"123456 987654321 4321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	p, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStats{cpuTicks: 325, startTicks: 123456, vsize: 987654321, rssPages: 4321}
	if p != want {
		t.Fatalf("parsed %+v, want %+v", p, want)
	}
	for _, bad := range []string{"", "4242 cotd S 1", "4242 (cotd) S 1 2 3", strings.Replace(line, " 250 ", " x ", 1)} {
		if _, err := parseProcStat([]byte(bad)); !errors.Is(err, errProcStat) {
			t.Errorf("%q: %v, want errProcStat", bad, err)
		}
	}
	if b, ok := parseBootTime([]byte("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n")); !ok || b != 1700000000 {
		t.Errorf("btime %d %v", b, ok)
	}
	if _, ok := parseBootTime([]byte("cpu 1\n")); ok {
		t.Error("btime found where there is none")
	}
}

// series parses Prometheus text into name{labels} -> value.
func series(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestWriteRuntimeAndProcess(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteRuntime(&buf); err != nil {
		t.Fatal(err)
	}
	if err := WriteProcess(&buf); err != nil {
		t.Fatal(err)
	}
	s := series(t, buf.String())
	for _, name := range []string{"go_goroutines", "go_threads", "go_memstats_heap_alloc_bytes", "go_memstats_alloc_bytes_total",
		"go_sched_gomaxprocs_threads"} {
		if s[name] < 1 {
			t.Errorf("%s = %v, want at least 1", name, s[name])
		}
	}
	if !strings.Contains(buf.String(), `go_info{version="go`) {
		t.Error("no go_info")
	}
	if _, err := os.Stat(procSelfStat); err != nil {
		t.Skip("no /proc: process metrics are left out")
	}
	if s["process_resident_memory_bytes"] < 1<<20 || s["process_virtual_memory_bytes"] < s["process_resident_memory_bytes"] {
		t.Errorf("memory: rss %v vsize %v", s["process_resident_memory_bytes"], s["process_virtual_memory_bytes"])
	}
	// The test binary holds at least stdin, stdout and stderr open.
	if s["process_open_fds"] < 3 || s["process_max_fds"] < s["process_open_fds"] {
		t.Errorf("fds: open %v max %v", s["process_open_fds"], s["process_max_fds"])
	}
	if s["process_start_time_seconds"] < 1e9 {
		t.Errorf("process_start_time_seconds = %v", s["process_start_time_seconds"])
	}
	if _, ok := s["process_cpu_seconds_total"]; !ok {
		t.Error("no process_cpu_seconds_total")
	}
}
