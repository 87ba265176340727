// Package architecture holds tests of the code's shape: rules a reviewer would otherwise have to remember.
package architecture

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// domainPackages are Kubernetes-free by design: they take plain Go values and return plain Go values, and the
// controller package translates custom resources to and from them.
var domainPackages = []string{
	"github.com/hookpost/hookpost/internal/signing",
	"github.com/hookpost/hookpost/internal/envelope",
	"github.com/hookpost/hookpost/internal/filter",
	"github.com/hookpost/hookpost/internal/delivery",
	"github.com/hookpost/hookpost/internal/backoff",
	"github.com/hookpost/hookpost/internal/netguard",
	"github.com/hookpost/hookpost/internal/source/...",
	"github.com/hookpost/hookpost/internal/ledger/...",
	"github.com/hookpost/hookpost/internal/pgschema",
	"github.com/hookpost/hookpost/internal/metrics",
}

// TestDomainPackagesImportNoKubernetes is the depguard rule of the house style, as a test that needs no linter:
// no domain package may depend, even indirectly, on a Kubernetes module.
func TestDomainPackagesImportNoKubernetes(t *testing.T) {
	cmd := exec.Command("go", append([]string{"list", "-deps", "-json=ImportPath,Deps"}, domainPackages...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	checked := 0
	for {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.ImportPath, "github.com/hookpost/hookpost/internal/") {
			continue
		}
		checked++
		for _, d := range p.Deps {
			if strings.HasPrefix(d, "k8s.io/") || strings.HasPrefix(d, "sigs.k8s.io/") {
				t.Errorf("%s depends on %s: domain code must not import Kubernetes; translate in internal/controller", p.ImportPath, d)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if checked < len(domainPackages) {
		t.Fatalf("checked %d packages, want at least %d", checked, len(domainPackages))
	}
}
