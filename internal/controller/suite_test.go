package controller

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
	ledgerpg "github.com/hookpost/hookpost/internal/ledger/postgres"
	"github.com/hookpost/hookpost/internal/netguard"
	"github.com/hookpost/hookpost/test/harness"
)

// The suite runs the real manager, with both controllers, against a real kube-apiserver and etcd. The clock is
// fake: retries are driven by stepping it, never by sleeping.
var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	fakeClock *clocktesting.FakeClock
	cancelMgr context.CancelFunc
	// testSecrets reads Secrets as the controllers do, through the running manager's cache and API reader.
	testSecrets *Secrets
	// managerCache is the running manager's cache, as the controllers read it (with CacheOptions' transforms).
	managerCache cache.Cache
	// retryBacklog is the hookpost_retry_backlog gauge's count, watched as the operator's main watches it.
	retryBacklog *RetryBacklog
	// testSealer seals deliveries as ingest does, with the key the suite's controllers check.
	testSealer = NewSealer([]byte("the controller suite's seal key, 32+ bytes"))
	suiteStart = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	// suiteDir holds the suite's PostgreSQL cluster and kubeconfig.
	suiteDir string
	// kubeconfigPath is a system:masters kubeconfig for the real kubectl and the plugin.
	kubeconfigPath string
	// suitePostgres holds the delivery ledger the controllers append every attempt to, as the operator's
	// --ledger-dsn does; testLedger reads it back.
	suitePostgres *harness.Postgres
	testLedger    *ledgerpg.Writer
)

// replayInterval is the suite's --replay-interval; its subscription replay budget is 6 a minute, burst 3.
const replayInterval = 10 * time.Second

// summaryWait bounds waits for a subscription's counters: they follow its deliveries by summaryDelay (real time,
// the workqueue's), plus a reconcile.
const summaryWait = 10 * time.Second

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	Expect(os.Getenv("KUBEBUILDER_ASSETS")).NotTo(BeEmpty(), "run the tests with `make test`, which builds kube-apiserver and etcd into bin/ and sets KUBEBUILDER_ASSETS")

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(hookpostv1.AddToScheme(scheme)).To(Succeed())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	suiteDir, err = os.MkdirTemp("", "hookpost-controller-suite-")
	Expect(err).NotTo(HaveOccurred())
	admin, err := testEnv.AddUser(envtest.User{Name: "suite-admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	kubeconfig, err := admin.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfigPath = filepath.Join(suiteDir, "kubeconfig")
	Expect(os.WriteFile(kubeconfigPath, kubeconfig, 0o600)).To(Succeed())
	pgDir := filepath.Join(suiteDir, "postgres")
	Expect(os.Mkdir(pgDir, 0o700)).To(Succeed())
	suitePostgres, err = harness.StartPostgresProcess(pgDir)
	Expect(err).NotTo(HaveOccurred())
	// Negative retention: the suite's attempts are dated by the fake clock, years ahead, and must never expire.
	testLedger, err = ledgerpg.New(context.Background(), ledgerpg.Options{DSN: suitePostgres.DSN(), Retention: -1})
	Expect(err).NotTo(HaveOccurred())
	Expect(testLedger.Migrate(context.Background())).To(Succeed())
	// The chart's admission policy, as a cluster installed with the chart has it (k8sClient is system:masters,
	// which it admits).
	Expect(harness.InstallDeliveryAdmission(context.Background(), k8sClient)).To(Succeed())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: CacheOptions(true)})
	Expect(err).NotTo(HaveOccurred())
	managerCache = mgr.GetCache()
	ctx, cancel := context.WithCancel(context.Background())
	cancelMgr = cancel
	fakeClock = clocktesting.NewFakeClock(suiteStart)
	// Only 127.0.0.1 is allowed: receivers on 127.0.0.2 (also loopback) play a forbidden destination.
	sender := delivery.NewSender(delivery.SenderOptions{
		Guard:         netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}),
		MaxConcurrent: 16,
		MaxPerHost:    4,
		TLSConfig:     tlsReceiverConfig(),
	})
	testSecrets = NewSecrets(mgr.GetClient(), mgr.GetAPIReader())
	Expect(Setup(ctx, mgr, Options{Clock: fakeClock, Sender: sender, UserAgent: "Hookpost/test", MaxRetryAfter: time.Hour, DeliveryWorkers: 8,
		TenantIsolation: true, Sealer: testSealer, ReplayLimits: ReplayLimits{Interval: replayInterval, PerMinute: 6, Burst: 3},
		Breakers: delivery.NewBreakers(), Ledger: testLedger})).To(Succeed())
	Expect(mgr.Add(testLedger)).To(Succeed())
	retryBacklog, err = WatchRetryBacklog(ctx, mgr.GetCache())
	Expect(err).NotTo(HaveOccurred())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	// Specs wait for a reconcile; on a busy machine the first would also wait for the manager's informers, so they
	// start once those have synced. A reconcile on a loaded machine can take longer than Gomega's default second:
	// waiting longer costs nothing when the spec passes, and the waits assert what happens, never how fast.
	Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	SetDefaultEventuallyTimeout(10 * time.Second)
})

var _ = AfterSuite(func() {
	if cancelMgr != nil {
		cancelMgr()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
	closeTLSReceiver()
	if testLedger != nil {
		testLedger.Close()
	}
	if suitePostgres != nil {
		suitePostgres.Stop()
	}
	if suiteDir != "" {
		_ = os.RemoveAll(suiteDir)
	}
})
