package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ: 100 on every Linux architecture Go runs on.
const clkTck = 100.0

// cpuTimes is what /proc/PID/stat says a process has used, in seconds.
type cpuTimes struct {
	User, Sys           float64 // the process's own threads
	ChildUser, ChildSys float64 // reaped children (PostgreSQL backends, for the postmaster)
}

func (c cpuTimes) Own() float64   { return c.User + c.Sys }
func (c cpuTimes) Total() float64 { return c.User + c.Sys + c.ChildUser + c.ChildSys }

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{c.User - o.User, c.Sys - o.Sys, c.ChildUser - o.ChildUser, c.ChildSys - o.ChildSys}
}

func readCPU(pid int) (cpuTimes, error) {
	return readCPU2(fmt.Sprintf("/proc/%d/stat", pid))
}

func readCPU2(path string) (cpuTimes, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return cpuTimes{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return cpuTimes{}, fmt.Errorf("%s: no comm", path)
	}
	f := strings.Fields(s[i+1:])
	// After the comm: state(3) ... utime is field 14 overall, i.e. index 11 here.
	if len(f) < 15 {
		return cpuTimes{}, fmt.Errorf("%s: short", path)
	}
	v := func(k int) float64 { x, _ := strconv.ParseFloat(f[k], 64); return x / clkTck }
	return cpuTimes{v(11), v(12), v(13), v(14)}, nil
}

// memKB returns VmHWM (peak RSS) and VmRSS in kB.
func memKB(pid int) (hwm, rss int64, err error) {
	m, err := memStatus(pid)
	return m["VmHWM"], m["VmRSS"], err
}

// memStatus returns the Vm*/Rss* lines of /proc/PID/status in kB.
func memStatus(pid int) (map[string]int64, error) {
	out := map[string]int64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !(strings.HasPrefix(k, "Vm") || strings.HasPrefix(k, "Rss")) {
			continue
		}
		f := strings.Fields(v)
		if len(f) >= 1 {
			out[k], _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	return out, nil
}

// findPID returns the pid whose command line contains every needle (0 if none).
func findPID(needles ...string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := strings.ReplaceAll(string(b), "\x00", " ")
		ok := true
		for _, n := range needles {
			if !strings.Contains(cl, n) {
				ok = false
				break
			}
		}
		if ok {
			return pid
		}
	}
	return 0
}

// Machine describes where the numbers were taken.
type Machine struct {
	Nproc      int    `json:"nproc"`
	CPUModel   string `json:"cpu_model"`
	Kernel     string `json:"kernel"`
	Date       string `json:"date"`
	LoadAvg    string `json:"loadavg_at_start"`
	LoadAvgEnd string `json:"loadavg_at_end"`
	MemTotal   string `json:"mem_total"`
	GoVersion  string `json:"go"`
	GitRev     string `json:"git_rev"`
	Postgres   string `json:"postgres"`
	Curl       string `json:"libcurl"`
}

func machine(root string) Machine {
	m := Machine{Nproc: runtime.NumCPU(), Date: time.Now().UTC().Format(time.RFC3339), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					m.CPUModel = strings.TrimSpace(v)
					break
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadAvg = loadavg()
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l := strings.SplitN(string(b), "\n", 2)[0]
		m.MemTotal = strings.Join(strings.Fields(l)[1:], " ")
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.GitRev = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no", "lib", "cmd").Output(); err == nil && len(out) > 0 {
			m.GitRev += "+dirty"
		}
	}
	if out, err := exec.Command("/usr/lib/postgresql/15/bin/postgres", "--version").Output(); err == nil {
		m.Postgres = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("curl-config", "--version").Output(); err == nil {
		m.Curl = strings.TrimSpace(string(out))
	}
	return m
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}
