package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/controller"
	"github.com/hookpost/hookpost/internal/delivery"
	"github.com/hookpost/hookpost/internal/netguard"
	"github.com/hookpost/hookpost/internal/version"
	"github.com/hookpost/hookpost/test/harness"
)

// The suite runs the plugin's cobra command in-process against a real kube-apiserver and etcd, with the real
// manager running both Hookpost controllers, so deliveries the plugin creates are really sent.
var (
	kubeconfig string
	k8sClient  client.Client
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	dir, err := os.MkdirTemp("", "kubectl-hookpost-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	cp, err := harness.StartControlPlane(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = cp.Stop() }()
	kubeconfig, k8sClient = cp.KubeconfigPath, cp.Client
	cancel, err := startManager(cp.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start manager:", err)
		return 1
	}
	defer cancel()
	return m.Run()
}

// testSealer seals the deliveries the tests create as the operator's own (ingest's), with the key the
// controllers check.
var testSealer = controller.NewSealer([]byte("the plugin tests' seal key, 32+ bytes"))

// startManager runs the operator's controllers as cmd/manager wires them, with the SSRF guard allowing only
// 127.0.0.1, where the test receivers listen.
func startManager(cfg *rest.Config) (context.CancelFunc, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	sender := delivery.NewSender(delivery.SenderOptions{
		Guard:         netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}),
		MaxConcurrent: 8,
		MaxPerHost:    4,
	})
	if err := controller.Setup(ctx, mgr, controller.Options{
		Clock: clock.RealClock{}, Sender: sender, UserAgent: version.UserAgent(), MaxRetryAfter: time.Hour, DeliveryWorkers: 4,
		Sealer: testSealer,
	}); err != nil {
		cancel()
		return nil, err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return cancel, nil
}

// result is one run of the plugin.
type result struct {
	stdout, stderr string
	code           int
}

// run runs `kubectl hookpost args...` in-process against the test cluster.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCommand(genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append(args, "--kubeconfig", kubeconfig))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.code
	default:
		r.code = 1
		r.stderr += "error: " + err.Error()
	}
	t.Logf("kubectl hookpost %s -> exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// mustRun runs the plugin and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, "", args...)
	if r.code != 0 {
		t.Fatalf("kubectl hookpost %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// newNamespace creates a namespace of its own for a test, granted every tenant and showing answers from internal
// addresses (the receivers listen on loopback), as a cluster admin would for a team that owns its receivers.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hp-", Annotations: map[string]string{
		hookpostv1.AnnotationTenants: "*", hookpostv1.AnnotationShowInternalResponses: "true"}}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// createReadySubscription creates the subscription and waits until Hookpost resolved its signing secret.
func createReadySubscription(t *testing.T, sub *hookpostv1.WebhookSubscription) *hookpostv1.WebhookSubscription {
	t.Helper()
	ctx := context.Background()
	if err := k8sClient.Create(ctx, sub); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(sub), sub); err != nil {
			return err
		}
		if sub.Status.SigningSecretRef == nil {
			return errors.New("no status.signingSecretRef yet")
		}
		return nil
	})
	return sub
}

// eventually retries f until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
