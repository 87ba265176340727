package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/hookpost/hookpost/test/harness"
)

// The demo under test and the operator it starts, built once for every test in this file.
var demoBinary, managerBinaryPath string

func TestMain(m *testing.M) {
	// The samples test uses controller-runtime's client, which warns with a stack trace when no logger is set.
	ctrllog.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "hookpost-demo-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		demoBinary = filepath.Join(dir, "hookpost-demo")
		if out, err := exec.Command("go", "build", "-o", demoBinary, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build the demo: %v\n%s", err, out)
			return 1
		}
		if managerBinaryPath, err = harness.BuildOperator(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func TestDemoWithNATS(t *testing.T)     { testDemoSettles(t, "nats") }
func TestDemoWithPostgres(t *testing.T) { testDemoSettles(t, "postgres") }

// testDemoSettles runs `make demo`'s program as a user would, with DEMO_EXIT_AFTER_SETTLE=1, and checks the story
// it tells and that it leaves nothing behind.
func testDemoSettles(t *testing.T, source string) {
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := demoCommand(ctx, tmp, source, "DEMO_EXIT_AFTER_SETTLE=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("demo with %s ran for %s", source, time.Since(start).Round(100*time.Millisecond))
	output := out.String()
	if err != nil {
		t.Fatalf("demo exited with %v, want 0; output:\n%s", err, output)
	}
	checkStory(t, output)
	checkNothingLeft(t, output, tmp)
	if t.Failed() {
		t.Logf("demo output:\n%s", output)
	}
}

// TestDemoStopsOnInterrupt runs the demo until it waits for Ctrl-C, sends SIGINT, and checks it exits 0 having
// stopped everything.
func TestDemoStopsOnInterrupt(t *testing.T) {
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := demoCommand(ctx, tmp, "nats")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var out strings.Builder
	waiting := make(chan struct{})
	go func() {
		s := bufio.NewScanner(pr)
		signalled := false
		for s.Scan() {
			mu.Lock()
			out.WriteString(s.Text() + "\n")
			mu.Unlock()
			if !signalled && strings.HasPrefix(s.Text(), "Press Ctrl-C") {
				signalled = true
				close(waiting)
			}
		}
	}()
	select {
	case <-waiting:
	case <-ctx.Done():
		t.Fatal("the demo never got to waiting for Ctrl-C")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	_ = pw.Close()
	mu.Lock()
	output := out.String()
	mu.Unlock()
	if err != nil {
		t.Fatalf("demo exited with %v after SIGINT, want 0; output:\n%s", err, output)
	}
	if !strings.Contains(output, "▸ Stopping everything the demo started") {
		t.Errorf("no shutdown reported after SIGINT; output:\n%s", output)
	}
	checkNothingLeft(t, output, tmp)
}

// demoCommand runs the demo with its temporary files (and envtest's) under tmp, so leftovers can be found there.
func demoCommand(ctx context.Context, tmp, source string, env ...string) *exec.Cmd {
	// Run as root, the harness starts postgres as the postgres user, which must be able to enter TMPDIR: with
	// TMPDIR set to tmp that includes t.TempDir's 0700 parent.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		_ = os.Chmod(d, 0o711)
	}
	cmd := exec.CommandContext(ctx, demoBinary)
	cmd.Env = append(os.Environ(), append([]string{"TMPDIR=" + tmp, envSource + "=" + source, envManager + "=" + managerBinaryPath}, env...)...)
	cmd.WaitDelay = 30 * time.Second
	return cmd
}

var (
	acceptedLine  = regexp.MustCompile(`(?m)^\s+✓ (\S+)\s+(\S+)\s+id (\S+)(.*)$`)
	outageLine    = regexp.MustCompile(`(?m)^\s+✗ flaky-endpoint\s+order\.created\s+answered 503`)
	rejectedLine  = regexp.MustCompile(`(?m)^\s+✗ .* rejected: `)
	deliveryRow   = regexp.MustCompile(`(?m)^webhookdelivery(?:\.webhooks\.hookpost\.io)?/(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s`)
	operatorPidRe = regexp.MustCompile(`pid (\d+), log `)
)

// checkStory checks the receiver verified and accepted every sample event once per matching subscription, the
// flaky endpoint recovered on the third attempt, and kubectl's table shows every delivery Succeeded.
func checkStory(t *testing.T, output string) {
	t.Helper()
	var want, got []string
	for _, ev := range sampleEvents() {
		for _, name := range matchingSubscriptions(demoSubscriptions(), ev) {
			want = append(want, name+" "+ev.eventType)
		}
	}
	for _, m := range acceptedLine.FindAllStringSubmatch(output, -1) {
		got = append(got, m[1]+" "+m[2])
		if m[1] == "flaky-endpoint" && !strings.Contains(m[4], "(attempt 3)") {
			t.Errorf("flaky-endpoint accepted %s on another attempt than the 3rd: %q", m[2], m[0])
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the receiver accepted (subscription, event):\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if n := len(outageLine.FindAllString(output, -1)); n != 2 {
		t.Errorf("flaky-endpoint answered 503 %d times, want 2", n)
	}
	if rejectedLine.MatchString(output) {
		t.Errorf("the receiver rejected a signature")
	}

	rows := deliveryRow.FindAllStringSubmatch(output, -1)
	if len(rows) != len(want) {
		t.Errorf("kubectl table shows %d deliveries, want %d", len(rows), len(want))
	}
	flaky := 0
	for _, r := range rows {
		if r[4] != "Succeeded" {
			t.Errorf("delivery %s (%s %s) is %s, want Succeeded", r[1], r[2], r[3], r[4])
		}
		if r[2] == "flaky-endpoint" {
			flaky++
			if r[5] != "3" {
				t.Errorf("flaky-endpoint's delivery took %s attempts, want 3", r[5])
			}
		}
	}
	if flaky != 1 {
		t.Errorf("kubectl table shows %d flaky-endpoint deliveries, want 1", flaky)
	}
	if !strings.Contains(output, "export KUBECONFIG=") {
		t.Error("the demo did not tell the user the kubeconfig path")
	}
}

// checkNothingLeft checks the operator is gone, no process runs from or in tmp (kube-apiserver, etcd, postgres and
// its backends all do while alive), and the demo removed its temporary directory.
func checkNothingLeft(t *testing.T, output, tmp string) {
	t.Helper()
	m := operatorPidRe.FindStringSubmatch(output)
	if m == nil {
		t.Fatal("the demo did not print the operator's pid")
	}
	pid, _ := strconv.Atoi(m[1])
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("the operator (pid %d) is still running", pid)
	}
	// Processes a demo start could leave are children it forgot to stop; give a killed one a moment to vanish.
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		left = processesUsing(tmp)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("processes left behind:\n  %s", strings.Join(left, "\n  "))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(tmp, "hookpost-demo-*")); len(leftovers) > 0 {
		t.Errorf("temporary directories left behind: %v", leftovers)
	}
}

// processesUsing lists processes whose command line mentions dir or whose working directory is under it.
func processesUsing(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(args, dir) || strings.HasPrefix(cwd, dir) {
			out = append(out, fmt.Sprintf("pid %s: %s (cwd %s)", e.Name(), args, cwd))
		}
	}
	return out
}
