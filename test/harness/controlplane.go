package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
)

// KubeVersion is the Kubernetes version whose kube-apiserver and etcd hack/envtest-assets.sh builds into bin/.
const KubeVersion = "1.37.2"

// ControlPlane is a real kube-apiserver and etcd (envtest's processes) with Hookpost's CRDs installed, and a
// kubeconfig file for the operator and kubectl.
type ControlPlane struct {
	Config         *rest.Config
	Client         client.Client
	KubeconfigPath string
	env            *envtest.Environment
}

// RepoRoot finds the repository root (the directory holding go.mod) from the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Scheme returns a scheme with the built-in kinds and Hookpost's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = hookpostv1.AddToScheme(s)
	return s
}

// StartControlPlane starts kube-apiserver and etcd, installs the CRDs from config/crd/bases and the chart's
// delivery admission policy (InstallDeliveryAdmission), and writes a system:masters kubeconfig into dir. The binaries come from KUBEBUILDER_ASSETS, else bin/k8s/<KubeVersion>
// (`make envtest` builds them).
func StartControlPlane(dir string) (*ControlPlane, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s", KubeVersion)
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("kube-apiserver not found in %s: run `make envtest` (make test and make demo do it)", assets)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	cp := &ControlPlane{Config: cfg, env: env}
	fail := func(err error) (*ControlPlane, error) {
		_ = env.Stop()
		return nil, err
	}
	if cp.Client, err = client.New(cfg, client.Options{Scheme: Scheme()}); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := InstallDeliveryAdmission(ctx, cp.Client); err != nil {
		return fail(fmt.Errorf("install the delivery admission policy: %w", err))
	}
	user, err := env.AddUser(envtest.User{Name: "hookpost-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fail(fmt.Errorf("add kubeconfig user: %w", err))
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fail(err)
	}
	cp.KubeconfigPath = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(cp.KubeconfigPath, kubeconfig, 0o600); err != nil {
		return fail(err)
	}
	return cp, nil
}

// Stop stops kube-apiserver and etcd.
func (cp *ControlPlane) Stop() error {
	cp.stopRestarted()
	return cp.env.Stop()
}

// APIServerPid returns the process id of the running kube-apiserver, for programs that read its CPU time and
// memory from /proc (the benchmark).
func (cp *ControlPlane) APIServerPid() (int, error) {
	return childRunning("kube-apiserver", "--secure-port="+cp.env.ControlPlane.APIServer.SecureServing.Port)
}

// EtcdPid returns the process id of the running etcd, for programs that read its CPU time and memory from /proc.
func (cp *ControlPlane) EtcdPid() (int, error) {
	return childRunning("etcd", "--listen-client-urls="+cp.env.ControlPlane.Etcd.URL.String())
}

// childRunning finds the child of this process that runs binary with arg on its command line: envtest starts
// kube-apiserver and etcd as children but keeps their process handles to itself, and the argument tells two
// control planes of one process apart.
func childRunning(binary, arg string) (int, error) {
	for _, pid := range childProcesses(os.Getpid()) {
		raw, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if filepath.Base(args[0]) == binary && slices.Contains(args[1:], arg) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child process runs %s with %s", binary, arg)
}
