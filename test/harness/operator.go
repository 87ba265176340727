package harness

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BuildOperator builds the manager binary into dir and returns its path.
func BuildOperator(dir string) (string, error) {
	return build(dir, "hookpost-manager", "./cmd/manager")
}

// BuildPlugin builds the kubectl plugin into dir and returns its path, so a test runs it as a user does.
func BuildPlugin(dir string) (string, error) {
	return build(dir, "kubectl-hookpost", "./cmd/kubectl-hookpost")
}

// build builds the repository's package pkg into dir/name.
func build(dir, name, pkg string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// Operator is the Hookpost manager running as a real child process.
type Operator struct {
	Binary string
	Args   []string
	Env    []string
	Log    io.Writer
	cmd    *exec.Cmd
	done   chan struct{}
}

// StartOperator starts binary with the kubeconfig and args. Its metrics and probe endpoints are disabled unless
// args set them, so several can run at once.
func StartOperator(binary, kubeconfig string, log io.Writer, args ...string) (*Operator, error) {
	o := &Operator{Binary: binary, Log: log,
		Args: append([]string{"--kubeconfig", kubeconfig, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}, args...)}
	return o, o.Start()
}

// Start starts the process (again).
func (o *Operator) Start() error {
	cmd := exec.Command(o.Binary, o.Args...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stdout, cmd.Stderr = o.Log, o.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start operator: %w", err)
	}
	o.cmd, o.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(o.done) }()
	return nil
}

// Done is closed when the process started last has exited, killed or on its own.
func (o *Operator) Done() <-chan struct{} { return o.done }

// Pid is the running process's id.
func (o *Operator) Pid() int { return o.cmd.Process.Pid }

// Kill sends SIGKILL, as a crash would, and waits for the process to be gone.
func (o *Operator) Kill() {
	_ = o.cmd.Process.Signal(syscall.SIGKILL)
	<-o.done
}

// Stop sends SIGTERM and waits up to timeout for a graceful exit, then kills.
func (o *Operator) Stop(timeout time.Duration) {
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.done:
	case <-time.After(timeout):
		o.Kill()
	}
}

// Usage reads the process's peak resident memory (bytes) and CPU time from /proc; call it before it exits.
func (o *Operator) Usage() (peakRSS int64, cpu time.Duration, err error) {
	pid := o.Pid()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			peakRSS = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return peakRSS, 0, err
	}
	// Fields after the command name (which may hold spaces) start after the last ')'; utime and stime are the
	// 14th and 15th fields overall, in clock ticks (100 per second on Linux).
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return peakRSS, time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
