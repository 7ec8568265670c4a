package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"syscall"
)

// Written from runtime/metrics and /proc rather than with the Prometheus
// client's collectors: those come with its registry and its own text
// encoder, a second metrics stack beside this one, for a dozen numbers.
// The names are the customary ones (client_golang's Go and process
// collectors), so existing dashboards read them.

// runtimeSamples are the runtime/metrics read for the go_* families.
var runtimeSamples = []struct {
	key, name, help, typ string
}{
	{"/sched/goroutines:goroutines", "go_goroutines", "Number of goroutines that currently exist.", "gauge"},
	{"/sched/gomaxprocs:threads", "go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting.", "gauge"},
	{"/gc/cycles/total:gc-cycles", "go_gc_cycles_total", "Completed GC cycles.", "counter"},
	{"/gc/heap/allocs:bytes", "go_memstats_alloc_bytes_total", "Total bytes allocated on the heap, even if freed.", "counter"},
	{"/gc/heap/allocs:objects", "go_memstats_mallocs_total", "Total heap objects allocated.", "counter"},
	{"/gc/heap/frees:objects", "go_memstats_frees_total", "Total heap objects freed.", "counter"},
	{"/gc/heap/objects:objects", "go_memstats_heap_objects", "Heap objects allocated and not yet freed.", "gauge"},
	{"/memory/classes/heap/objects:bytes", "go_memstats_heap_alloc_bytes", "Heap bytes allocated and still in use.", "gauge"},
	{"/gc/heap/goal:bytes", "go_memstats_next_gc_bytes", "Heap size at which the next GC cycle is due.", "gauge"},
	{"/memory/classes/heap/stacks:bytes", "go_memstats_stack_inuse_bytes", "Bytes in stack spans.", "gauge"},
	{"/memory/classes/total:bytes", "go_memstats_sys_bytes", "Bytes of memory obtained from the OS.", "gauge"},
}

// WriteRuntime writes the go_* families: goroutines, threads, GC and heap
// figures, and go_info with the Go version.
func WriteRuntime(out io.Writer) error {
	samples := make([]metrics.Sample, len(runtimeSamples))
	for i, s := range runtimeSamples {
		samples[i].Name = s.key
	}
	metrics.Read(samples)
	w := NewWriter(out)
	for i, s := range runtimeSamples {
		var v float64
		switch samples[i].Value.Kind() {
		case metrics.KindUint64:
			v = float64(samples[i].Value.Uint64())
		case metrics.KindFloat64:
			v = samples[i].Value.Float64()
		default:
			continue // not provided by this Go version
		}
		w.One(s.name, s.help, s.typ, v)
	}
	threads, _ := runtime.ThreadCreateProfile(nil)
	w.One("go_threads", "Number of OS threads created.", "gauge", float64(threads))
	w.Family("go_info", "Information about the Go environment.", "gauge")
	w.Sample("go_info", 1, "version", runtime.Version())
	return w.Flush()
}

// Where the process figures come from.
const (
	procSelfStat = "/proc/self/stat"
	procStat     = "/proc/stat"
	procSelfFD   = "/proc/self/fd"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports (the kernel fixes it for user space).
const clockTicks = 100

var errProcStat = errors.New("metrics: malformed /proc stat line")

// procStats is what /proc/self/stat says about the process.
type procStats struct {
	cpuTicks   uint64 // utime + stime
	startTicks uint64 // since boot
	vsize      uint64 // bytes
	rssPages   int64
}

// parseProcStat reads /proc/<pid>/stat. The command name, in parentheses,
// may hold spaces and parentheses: the fields start after the last ')'.
func parseProcStat(b []byte) (procStats, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStats{}, errProcStat
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 22 {
		return procStats{}, fmt.Errorf("%w: %d fields", errProcStat, len(f)+2)
	}
	var p procStats
	var err error
	num := func(n int) uint64 {
		v, e := strconv.ParseUint(string(f[n-3]), 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("%w: field %d: %w", errProcStat, n, e)
		}
		return v
	}
	p.cpuTicks = num(14) + num(15)
	p.startTicks = num(22)
	p.vsize = num(23)
	p.rssPages = int64(num(24))
	return p, err
}

// parseBootTime finds btime (seconds since the epoch) in /proc/stat.
func parseBootTime(b []byte) (uint64, bool) {
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// WriteProcess writes the process_* families from /proc (Linux). A figure
// the system does not give is left out rather than reported as 0.
func WriteProcess(out io.Writer) error {
	w := NewWriter(out)
	if b, err := os.ReadFile(procSelfStat); err == nil {
		if p, err := parseProcStat(b); err == nil {
			w.One("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter",
				float64(p.cpuTicks)/clockTicks)
			w.One("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", float64(p.vsize))
			w.One("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge",
				float64(p.rssPages*int64(os.Getpagesize())))
			if sb, err := os.ReadFile(procStat); err == nil {
				if boot, ok := parseBootTime(sb); ok {
					w.One("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge",
						float64(boot)+float64(p.startTicks)/clockTicks)
				}
			}
		}
	}
	if fds, err := os.ReadDir(procSelfFD); err == nil {
		// ReadDir's own descriptor is closed by now, but listed: count it out.
		w.One("process_open_fds", "Number of open file descriptors.", "gauge", float64(max(len(fds)-1, 0)))
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		w.One("process_max_fds", "Maximum number of open file descriptors.", "gauge", float64(lim.Cur))
	}
	return w.Flush()
}
