package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// restartedAPIServers holds the kube-apiserver processes RestartAPIServer started, per control plane: envtest
// knows only the first one, so Stop ends these itself.
var restartedAPIServers sync.Map // *ControlPlane -> *exec.Cmd

// StopAPIServer stops kube-apiserver (SIGTERM, then waits for it to exit) and returns a function that starts it
// again with the same arguments, certificates and port, so clients holding the kubeconfig reconnect to it, and
// waits until it answers. etcd keeps running, so nothing stored is lost.
func (cp *ControlPlane) StopAPIServer() (start func(context.Context) error, err error) {
	pid, err := cp.APIServerPid()
	if err != nil {
		return nil, err
	}
	args, err := procStrings(pid, "cmdline")
	if err != nil {
		return nil, err
	}
	env, err := procStrings(pid, "environ")
	if err != nil {
		return nil, err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil, fmt.Errorf("stop kube-apiserver: %w", err)
	}
	waitForExit([]int{pid})
	if prev, ok := restartedAPIServers.Load(cp); ok {
		_ = prev.(*exec.Cmd).Wait()
	}
	return func(ctx context.Context) error {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start kube-apiserver again: %w", err)
		}
		restartedAPIServers.Store(cp, cmd)
		for {
			err := cp.Client.Get(ctx, client.ObjectKey{Name: "default"}, &corev1.Namespace{})
			if err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("kube-apiserver not answering after a restart: %w", errors.Join(err, ctx.Err()))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}, nil
}

// stopRestarted stops a kube-apiserver that RestartAPIServer started.
func (cp *ControlPlane) stopRestarted() {
	v, ok := restartedAPIServers.LoadAndDelete(cp)
	if !ok {
		return
	}
	cmd := v.(*exec.Cmd)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// procStrings reads a NUL-separated /proc file of pid.
func procStrings(pid int, name string) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), name))
	if err != nil {
		return nil, fmt.Errorf("read %s of kube-apiserver: %w", name, err)
	}
	return strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), nil
}
