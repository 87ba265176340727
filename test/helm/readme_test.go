package helm

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/hookpost/hookpost/internal/ingest"
)

// readmeInstall returns the arguments after `helm install <release> <chart>` of README.md's install example, and
// the Secret name its `kubectl create secret` line makes.
func readmeInstall(t *testing.T) (args []string, secret string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var install string
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, "helm install ") {
			if install != "" {
				t.Fatalf("README.md has more than one helm install line:\n%s%s", install, line)
			}
			install = line
		}
		if m := regexp.MustCompile(`create secret generic (\S+)`).FindStringSubmatch(line); m != nil {
			secret = m[1]
		}
	}
	if i := strings.Index(install, " #"); i >= 0 {
		install = install[:i] // a shell comment
	}
	fields := strings.Fields(install)
	if len(fields) < 4 || fields[3] != chart {
		t.Fatalf("README.md's helm install line %q does not install %s", install, chart)
	}
	for i := 4; i < len(fields); i++ {
		switch fields[i] {
		case "-n", "--namespace":
			i++ // renderChart sets the namespace
		case "--create-namespace":
		default:
			args = append(args, fields[i])
		}
	}
	return args, secret
}

// TestReadmeInstallConfiguresASourceAndTheBuiltImage renders the chart with README.md's exact helm install
// flags: the operator it installs must read events from a source (with the DSN from the Secret the README
// creates), and run the image the README builds, not one that is published nowhere.
func TestReadmeInstallConfiguresASourceAndTheBuiltImage(t *testing.T) {
	args, secret := readmeInstall(t)
	objs := renderChart(t, "hookpost-readme", args...)
	d := convert[appsv1.Deployment](t, find(t, objs, "Deployment"))
	c := checkManagerDeployment(t, d)
	pg, nats := hasEnvVar(c, "HOOKPOST_POSTGRES_DSN"), hasEnvVar(c, "HOOKPOST_NATS_URL")
	if !pg && !nats {
		t.Fatalf("README.md's helm install (%v) enables no event source: the operator would ingest nothing", args)
	}
	if pg {
		ref := envVar(t, c, "HOOKPOST_POSTGRES_DSN").ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != secret || secret == "" {
			t.Errorf("HOOKPOST_POSTGRES_DSN from %+v, want the Secret README.md creates (%q)", ref, secret)
		}
	}
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "docker build --build-arg VERSION=v0.1.0 -t "+c.Image+" .") {
		t.Errorf("the chart runs image %s, which README.md's docker build line does not build", c.Image)
	}
	createNamespace(t, "hookpost-readme")
	dryRunApply(t, objs)
}

// TestValuesSayEveryReplicaIngests keeps values.yaml's replicaCount comment true to the code: ingest (and the
// first attempt) runs on every replica, not on the leader alone, so extra replicas are not idle standbys.
func TestValuesSayEveryReplicaIngests(t *testing.T) {
	if ingest.New(nil, nil, nil, ingest.Options{}).NeedLeaderElection() {
		t.Fatal("ingest runs on the leader only: update charts/hookpost/values.yaml's replicaCount comment and this test")
	}
	raw, err := os.ReadFile(filepath.Join(root, chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	comment := string(raw)[:strings.Index(string(raw), "\nreplicaCount:")]
	if !strings.Contains(comment, "Every replica ingests and makes first attempts") || strings.Contains(strings.ToLower(comment), "standby") {
		t.Errorf("values.yaml's replicaCount comment does not say that every replica ingests:\n%s", comment)
	}
}
