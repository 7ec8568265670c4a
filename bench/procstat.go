package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every Linux
// platform Go supports (the kernel fixes it for the user ABI).
const clockTicks = 100

// ProcSample is one look at a process in /proc.
type ProcSample struct {
	// T is seconds since the start of the run.
	T float64 `json:"t"`
	// RSS is the resident set (VmRSS) in bytes.
	RSS int64 `json:"rss_bytes"`
	// CPU is the CPU used since the previous sample, in percent of one core (200 = two
	// cores busy).
	CPU float64 `json:"cpu_pct"`
	// FDs is the number of open descriptors; Threads the number of threads.
	FDs     int `json:"fds"`
	Threads int `json:"threads"`
}

// procSampler samples one process. Not safe for concurrent use.
type procSampler struct {
	pid       int
	prevTicks int64
	prevAt    time.Time
}

func newProcSampler(pid int) *procSampler { return &procSampler{pid: pid} }

// sample reads /proc/PID/{stat,status,fd}. The first sample's CPU is 0.
func (p *procSampler) sample(now, start time.Time) (ProcSample, error) {
	ticks, err := p.ticks()
	if err != nil {
		return ProcSample{T: now.Sub(start).Seconds()}, err
	}
	return p.sampleTicks(now, start, ticks)
}

// sampleTicks is sample with /proc/PID/stat already read at now: ticks is its utime+stime.
func (p *procSampler) sampleTicks(now, start time.Time, ticks int64) (ProcSample, error) {
	dir := "/proc/" + strconv.Itoa(p.pid)
	s := ProcSample{T: now.Sub(start).Seconds()}
	if !p.prevAt.IsZero() {
		if dt := now.Sub(p.prevAt).Seconds(); dt > 0 {
			s.CPU = 100 * float64(ticks-p.prevTicks) / clockTicks / dt
		}
	}
	p.prevTicks, p.prevAt = ticks, now
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, err
	}
	s.RSS = statusField(status, "VmRSS:") * 1024
	s.Threads = int(statusField(status, "Threads:"))
	if d, err := os.Open(dir + "/fd"); err == nil {
		names, _ := d.Readdirnames(-1)
		_ = d.Close()
		s.FDs = len(names)
	}
	return s, nil
}

// ticks is the process's CPU time so far (utime+stime of every thread, children not
// included), in clock ticks: the figure both the CPU share and the cost per delivery are
// taken from.
func (p *procSampler) ticks() (int64, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return cpuTicks(stat)
}

// cpuTicks returns utime+stime from the contents of /proc/PID/stat. The command name (field
// 2) is in parentheses and may hold spaces, so fields are counted after its last ')'.
func cpuTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("bench: bad /proc stat")
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("bench: short /proc stat")
	}
	u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: bad /proc stat times %q %q", f[11], f[12])
	}
	return u + s, nil
}

// statusField returns the first number after name in /proc/PID/status, or 0.
func statusField(status []byte, name string) int64 {
	i := bytes.Index(status, []byte(name))
	if i < 0 {
		return 0
	}
	rest := status[i+len(name):]
	if j := bytes.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	f := bytes.Fields(rest)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(string(f[0]), 10, 64)
	return n
}

// ProcReport is a process observed over a run.
type ProcReport struct {
	PID     int          `json:"pid"`
	Samples []ProcSample `json:"samples"`
	MaxRSS  int64        `json:"max_rss_bytes"`
	MaxFDs  int          `json:"max_fds"`
	MeanCPU float64      `json:"mean_cpu_pct"`
	MaxCPU  float64      `json:"max_cpu_pct"`
}

func newProcReport(pid int, samples []ProcSample) *ProcReport {
	if len(samples) == 0 {
		return nil
	}
	p := &ProcReport{PID: pid, Samples: samples}
	var sum float64
	for i, s := range samples {
		p.MaxRSS = max(p.MaxRSS, s.RSS)
		p.MaxFDs = max(p.MaxFDs, s.FDs)
		p.MaxCPU = max(p.MaxCPU, s.CPU)
		if i > 0 {
			sum += s.CPU
		}
	}
	if len(samples) > 1 {
		p.MeanCPU = sum / float64(len(samples)-1)
	}
	return p
}
