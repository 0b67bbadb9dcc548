// Package chaos injects faults into a simulated cluster while the operator
// works, and checks afterwards that nothing was lost: the invariants of
// test/internal/invariants hold, no pod was replaced for nothing, the
// operator falls quiet, and it logged no error but transient ones. Each test
// runs on a cluster of its own, and records its figures for
// docs/reliability.md.
//
// Run it with make test-chaos; CHAOS_ARGS="-size=500" makes it larger.
package chaos

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

var (
	size = flag.Int("size", 20, "How many Memcacheds the faults hit.")
	out  = flag.String("out", "", "Directory for the figures (figures.json, figures.md) and the logs; a temporary one when empty.")

	binDir, managerBinary, outDir string
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The clients of the tests log nothing.
	ctrllog.SetLogger(logr.Discard())
	SetDefaultEventuallyTimeout(5 * time.Minute)
	SetDefaultEventuallyPollingInterval(500 * time.Millisecond)
	binDir, managerBinary = os.Getenv("CONTROL_PLANE_DIR"), os.Getenv("MANAGER_BINARY")
	if binDir == "" || managerBinary == "" {
		fmt.Fprintln(os.Stderr, "CONTROL_PLANE_DIR and MANAGER_BINARY must be set: run these tests with 'make test-chaos'")
		os.Exit(1)
	}
	outDir = *out
	if outDir == "" {
		dir, err := os.MkdirTemp("", "memcached-operator-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		outDir = dir
	}
	code := m.Run()
	if err := writeFigures(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if table, err := os.ReadFile(filepath.Join(outDir, "figures.md")); err == nil {
		fmt.Printf("\n%s\n", table)
	}
	fmt.Printf("Figures and logs in %s\n", outDir)
	os.Exit(code)
}

// Figure is what one fault cost.
type Figure struct {
	Fault      string  `json:"fault"`
	Memcacheds int     `json:"memcacheds"`
	Injected   int     `json:"injected"`
	RecoverP50 float64 `json:"recoverP50Seconds"`
	RecoverP99 float64 `json:"recoverP99Seconds"`
	// Violations counts the invariant violations left after recovery.
	Violations int `json:"violations"`
	// Requests are the operator's API requests from the fault to recovery.
	Requests float64 `json:"requests"`
	Note     string  `json:"note,omitempty"`
}

var (
	figuresMu sync.Mutex
	figures   []Figure
)

func record(t *testing.T, f Figure) {
	t.Helper()
	t.Logf("%s: %d injected on %d Memcacheds, recovered p50 %.1fs p99 %.1fs, %d violations, %.0f requests. %s",
		f.Fault, f.Injected, f.Memcacheds, f.RecoverP50, f.RecoverP99, f.Violations, f.Requests, f.Note)
	figuresMu.Lock()
	defer figuresMu.Unlock()
	figures = append(figures, f)
	NewWithT(t).Expect(f.Violations).To(BeZero())
}

// writeFigures writes the figures as JSON, and as the Markdown table of
// docs/reliability.md.
func writeFigures() error {
	data, err := json.MarshalIndent(figures, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(outDir, "figures.json"), data, 0o644); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("| fault | Memcacheds | injected | recovered p50 / p99 | violations | requests | note |\n|---|---|---|---|---|---|---|\n")
	for _, f := range figures {
		fmt.Fprintf(&b, "| %s | %d | %d | %.1f s / %.1f s | %d | %.0f | %s |\n",
			f.Fault, f.Memcacheds, f.Injected, f.RecoverP50, f.RecoverP99, f.Violations, f.Requests, f.Note)
	}
	return os.WriteFile(filepath.Join(outDir, "figures.md"), []byte(b.String()), 0o644)
}
