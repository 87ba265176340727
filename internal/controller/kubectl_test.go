package controller

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// kubectl runs the kubectl binary envtest's assets hold, as a user would, against the suite's API server and
// returns its output.
func kubectl(args ...string) string {
	GinkgoHelper()
	return run(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append([]string{"--kubeconfig", kubeconfigPath}, args...)...)
}

// run runs binary with args and returns its standard output, failing the spec when it exits non-zero.
func run(binary string, args ...string) string {
	GinkgoHelper()
	cmd := exec.Command(binary, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	Expect(err).NotTo(HaveOccurred(), "%s %s: %s", filepath.Base(binary), strings.Join(args, " "), stderr.String())
	GinkgoWriter.Printf("$ %s %s\n%s", filepath.Base(binary), strings.Join(args, " "), out)
	return string(out)
}
