package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hookpost/hookpost/test/harness"
)

// Names of the measured processes, in report order.
const (
	processOperator  = "operator"
	processAPIServer = "kube-apiserver"
	processEtcd      = "etcd"
	processPostgres  = "postgres"
	processBench     = "bench"
)

var processOrder = []string{processOperator, processAPIServer, processEtcd, processPostgres, processBench}

// cpuReported are the processes whose CPU time the report shows: the bench's own is the receiver's and the
// producers' work, not a cost of delivering.
var cpuReported = []string{processOperator, processAPIServer, processEtcd, processPostgres}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux the bench runs on.
const clockTicks = 100

// measured is a process, or a server's processes, whose CPU time and peak memory the bench reports.
type measured struct {
	name string
	pids func() []int
}

// procSample is what /proc says about a measured process at one moment.
type procSample struct {
	// cpu is user and system time, including that of children the processes have waited for: PostgreSQL's
	// postmaster waits for its backends, so their time survives their exit.
	cpu time.Duration
	// peakRSS is the sum of each process's peak resident set (VmHWM) since resetPeak; for PostgreSQL's several
	// processes it counts shared buffers once per process that touched them.
	peakRSS int64
}

// processUsage is a measured process's use over a run's window.
type processUsage struct {
	cpu     time.Duration
	peakRSS int64
}

func (m measured) sample() procSample {
	var s procSample
	for _, pid := range m.pids() {
		p, err := readProc(pid)
		if err != nil {
			continue // exited since it was listed
		}
		s.cpu += p.cpu
		s.peakRSS += p.peakRSS
	}
	return s
}

// resetPeak sets each process's VmHWM to its current resident set, so the next sample's peak is the peak since
// now (writing 5 to clear_refs, Linux 4.0 and later). Where that is refused, the peak is since the process
// started.
func (m measured) resetPeak() {
	for _, pid := range m.pids() {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	}
}

func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	// Fields after the command name (which may hold spaces) start after the last ')': utime, stime, cutime and
	// cstime are the 14th to 17th fields overall.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return procSample{}, errors.New("unreadable stat")
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 15 {
		return procSample{}, errors.New("short stat")
	}
	var ticks int64
	for _, f := range fields[11:15] {
		t, _ := strconv.ParseInt(f, 10, 64)
		ticks += t
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	var peak int64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			peak = kb * 1024
		}
	}
	return procSample{cpu: time.Duration(ticks) * time.Second / clockTicks, peakRSS: peak}, nil
}

func onePid(pid int) func() []int { return func() []int { return []int{pid} } }

// controlPlaneProcesses are kube-apiserver and etcd, which outlive every run.
func controlPlaneProcesses(cp *harness.ControlPlane) ([]measured, error) {
	apiserver, err := cp.APIServerPid()
	if err != nil {
		return nil, err
	}
	etcd, err := cp.EtcdPid()
	if err != nil {
		return nil, err
	}
	return []measured{{name: processAPIServer, pids: onePid(apiserver)}, {name: processEtcd, pids: onePid(etcd)}}, nil
}

// benchProcess is this program: the receiver, the producers and the in-process NATS server.
func benchProcess() measured { return measured{name: processBench, pids: onePid(os.Getpid())} }
