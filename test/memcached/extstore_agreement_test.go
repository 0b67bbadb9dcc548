package memcached_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/test/internal/apiserver"
)

// extstoreSeed makes the generated specs the same on every run.
const extstoreSeed = 20261206

// extstoreSpecCount is how many specs TestExtstoreRulesAgreeWithRealMemcached
// generates.
const extstoreSpecCount = 400

// absent leaves a field out of a generated spec.
type absentField struct{}

var absent = absentField{}

// pick returns one of values, at random.
func pick(rng *rand.Rand, values ...any) any { return values[rng.IntN(len(values))] }

// put sets key of m to v, unless v is absent.
func put(m map[string]any, key string, v any) {
	switch v := v.(type) {
	case absentField:
	case int:
		m[key] = int64(v)
	default:
		m[key] = v
	}
}

// extstoreFields are the integer fields of the generated specs: values within
// the schema's bounds, at them and between, and values beyond them.
var extstoreFields = []struct {
	path           string
	within, beyond []any
}{
	{"extstore.writeBufferMB", []any{absent, 2, 4, 8, 16, 32, 64}, []any{0, 1, 3, 6, 12, 48, 96, 128, 256}},
	{"extstore.ioThreads", []any{absent, 1, 4, 10, 64}, []any{0, 65, 1000}},
	{"extstore.itemSizeBytes", []any{absent, 1, 64, 512, 4096, 1048576}, []any{0, 1048577}},
	{"extstore.itemAgeSeconds", []any{absent, 1, 3600, 31536000}, []any{0, 31536001}},
	{"extstore.recacheRate", []any{absent, 0, 1, 2000, 1000000}, []any{-1, 1000001}},
	{"extstore.maxSleepMicroseconds", []any{absent, 100, 10000, 1000000}, []any{99, 1000001}},
	{"extstore.freeMemoryPercent", []any{absent, 0, 1, 10, 50}, []any{-1, 51, 100}},
	// memcached fills memoryMB with empty pages when it starts with
	// extstore: larger values only make each run slower.
	{"memoryMB", []any{absent, absent, absent, absent, absent, 1, 8, 64, 100, 128, 256, 512}, []any{0, 1048577}},
}

// generateExtstoreSpecs returns n specs with extstore, as JSON objects, from a
// fixed seed: every field of spec.extstore, memoryMB and maxItemSizeKB within
// the schema's bounds, and in a quarter of them one beyond; item sizes
// around the write buffers and half of memoryMB; volume sizes around the
// smallest and largest file memcached accepts and at random; sometimes a
// Deployment, warm restart, a memory limit or options in extraArgs.
func generateExtstoreSpecs(n int) []map[string]any {
	rng := rand.New(rand.NewPCG(extstoreSeed, memcached.Port))
	specs := make([]map[string]any, 0, n)
	for range n {
		ext := map[string]any{}
		spec := map[string]any{"size": int64(1), "extstore": ext}
		put(ext, "enabled", pick(rng, true, true, true, true, true, true, true, true, true, false, absent))
		put(ext, "size", extstoreSize(rng))
		beyond := -1
		if rng.IntN(4) == 0 {
			beyond = rng.IntN(len(extstoreFields) + 1) // the last: maxItemSizeKB
		}
		values := map[string]any{}
		for f, bounded := range extstoreFields {
			v := pick(rng, bounded.within...)
			if f == beyond {
				v = pick(rng, bounded.beyond...)
			}
			values[bounded.path] = v
			if name, ok := strings.CutPrefix(bounded.path, "extstore."); ok {
				put(ext, name, v)
			} else {
				put(spec, bounded.path, v)
			}
		}
		put(spec, "workload", pick(rng, "StatefulSet", "StatefulSet", "StatefulSet", "StatefulSet", "StatefulSet",
			"StatefulSet", "StatefulSet", "StatefulSet", "StatefulSet", "StatefulSet", "Deployment", absent))
		w, ok := values["extstore.writeBufferMB"].(int)
		if !ok || w <= 0 {
			w = cachev1alpha1.DefaultExtstoreWriteBufferMB
		}
		m, ok := values["memoryMB"].(int)
		if !ok || m <= 0 {
			m = cachev1alpha1.DefaultMemoryMB
		}
		// Item sizes are whole multiples of 512 KB, the only ones memcached
		// takes without its own slab options.
		item := pick(rng, absent, absent, absent, 512, 1024, 1536, 2048, 4096, 8192,
			w*1024, w*1024, w*1024+512, max(w*1024-512, 512), max(m*512, 512), m*512+512)
		if beyond == len(extstoreFields) {
			item = pick(rng, 0, 1048576+512)
		}
		put(spec, "maxItemSizeKB", item)
		// Mostly, an item size around the write buffers comes with the
		// memory it needs, lest half of memoryMB refuse it first.
		if kb, ok := item.(int); ok && kb*2 > m*1024 && kb <= w*1024+512 && rng.IntN(4) != 0 && beyond < 0 {
			for _, mb := range []int{128, 256, 512} {
				if kb*2 <= mb*1024 {
					spec["memoryMB"] = int64(mb)
					break
				}
			}
		}
		if rng.IntN(12) == 0 {
			spec["warmRestart"] = map[string]any{"enabled": rng.IntN(2) == 0}
		}
		if rng.IntN(10) == 0 {
			need := m + m/10 + 32 + 6*w
			spec["resources"] = map[string]any{"limits": map[string]any{
				"memory": pick(rng, fmt.Sprintf("%dMi", need), fmt.Sprintf("%dMi", need-1), fmt.Sprintf("%dMi", need-6*w))}}
		}
		if rng.IntN(10) == 0 {
			spec["extraArgs"] = pick(rng,
				[]any{"-o", "ext_page_size=32"}, []any{"-o", "ext_wbuf_size=8"}, []any{"-o", "ext_path=/tmp/elsewhere:1g"},
				[]any{"-o", "slab_automove_freeratio=0.2"}, []any{"-o", "ext_drop_unread"}, []any{"-o", "modern"},
				[]any{"-o", "lru_crawler,hashpower=20"}, []any{"-R", "40"}, []any{"-U", "11211"}, []any{"-o", "no_chunked_items"})
		}
		specs = append(specs, spec)
	}
	return specs
}

// extstoreSize returns a volume size: around the smallest and largest that
// give memcached a file it takes, at random in each unit, or not a whole
// number of Mi, Gi or Ti.
func extstoreSize(rng *rand.Rand) any {
	switch rng.IntN(6) {
	case 0:
		return pick(rng, absent, "71Mi", "72Mi", "73Mi", "142Mi", "143Mi", "4551Gi", "4552Gi", "4Ti", "5Ti",
			// Files of 65534 and 65535 pages.
			"4660266Mi", "4660267Mi")
	case 1:
		return strconv.Itoa(1+rng.IntN(20000)) + "Mi"
	case 2:
		return strconv.Itoa(1+rng.IntN(6000)) + "Gi"
	case 3:
		return strconv.Itoa(1+rng.IntN(6)) + "Ti"
	case 4:
		// The smallest volume whose file has exactly k pages, or one MiB
		// less: k at memcached's bounds, or at random.
		pages := pick(rng, 1, 2, 65534, 65535, 65536, 1+rng.IntN(70000)).(int)
		mb := (pages*memcached.ExtstorePageMB*10 + 8) / 9
		return strconv.Itoa(mb-rng.IntN(2)) + "Mi"
	}
	return pick(rng, "1G", "10G", "0Gi", "+1Gi", "1.5Gi", "01Gi", "1gi", "1Ki", "1Pi", "", "9999999Ti", "1e3Mi")
}

// schemaBounds are the bounds of the schema's integer fields that the
// operator does not check: the API server alone refuses values beyond them.
var schemaBounds = map[string][2]int64{
	"memoryMB": {1, 1048576}, "maxItemSizeKB": {1, 1048576},
	"extstore.ioThreads": {1, 64}, "extstore.itemSizeBytes": {1, 1048576}, "extstore.itemAgeSeconds": {1, 31536000},
	"extstore.recacheRate": {0, 1000000}, "extstore.maxSleepMicroseconds": {100, 1000000},
	"extstore.freeMemoryPercent": {0, 50},
}

// beyondAdmission returns the field or rule by which only the API server
// refuses spec: a value beyond the schema's bounds or enum, or an item size
// above half of memoryMB (a rule of the CRD that the operator's checks leave
// to it), and the text its refusal must hold; or "", "".
func beyondAdmission(spec map[string]any) (string, string) {
	get := func(path string) (int64, bool) {
		var v any = spec
		for part := range strings.SplitSeq(path, ".") {
			obj, ok := v.(map[string]any)
			if !ok {
				return 0, false
			}
			if v, ok = obj[part]; !ok {
				return 0, false
			}
		}
		n, ok := v.(int64)
		return n, ok
	}
	for _, path := range slices.Sorted(maps.Keys(schemaBounds)) {
		if v, ok := get(path); ok && (v < schemaBounds[path][0] || v > schemaBounds[path][1]) {
			return path, "spec." + path
		}
	}
	if ext, ok := spec["extstore"].(map[string]any); ok && ext["size"] == "" {
		// The operator reads an empty size as none, the default.
		return "extstore.size empty", "spec.extstore.size"
	}
	if w, ok := get("extstore.writeBufferMB"); ok && !slices.Contains([]int64{2, 4, 8, 16, 32, 64}, w) {
		return "extstore.writeBufferMB", "spec.extstore.writeBufferMB"
	}
	itemKB, ok := get("maxItemSizeKB")
	if !ok {
		itemKB = cachev1alpha1.DefaultMaxItemSizeKB
	}
	memoryMB, ok := get("memoryMB")
	if !ok {
		memoryMB = cachev1alpha1.DefaultMemoryMB
	}
	if itemKB*2 > memoryMB*1024 {
		return "maxItemSizeKB at most half of memoryMB", "maxItemSizeKB may be at most half of memoryMB"
	}
	return "", ""
}

// operatorVerdict is what the operator's checks of the spec say, in the
// order it makes them.
func operatorVerdict(spec *cachev1alpha1.MemcachedSpec) error {
	for _, check := range []func(*cachev1alpha1.MemcachedSpec) error{
		memcached.CheckMemoryLimit, memcached.CheckExtraArgs, memcached.CheckExtstore} {
		if err := check(spec); err != nil {
			return err
		}
	}
	return nil
}

// forMemcached reports whether err, of CheckExtstore, refuses a setting for
// memcached's sake, rather than for the operator's (a Deployment, warm
// restart, a size it cannot read).
func forMemcached(err error) bool {
	fe, ok := errors.AsType[*field.Error](err)
	if !ok {
		return false
	}
	switch fe.Field {
	case "spec.extstore.writeBufferMB", "spec.maxItemSizeKB":
		return true
	case "spec.extstore.size":
		return !strings.Contains(fe.Detail, "whole number")
	}
	return false
}

// memcachedRun is what a memcached binary made of a rendered command line.
type memcachedRun struct {
	works  bool   // it started with extstore as rendered
	reason string // why not: its output, or what it read differently
}

// runExtstore starts binary with args, made local, its extstore file in dir,
// where a file of fileMB is left as on a volume a pod had before, and
// reports whether it starts with a file of the rendered size, of at least one
// page, and its settings as rendered.
func runExtstore(ctx context.Context, binary string, args []string, dir string, fileMB int64, want map[string]string) (memcachedRun, error) {
	file := filepath.Join(dir, memcached.ExtstoreFile)
	if err := os.WriteFile(file, nil, 0o666); err != nil {
		return memcachedRun{}, fmt.Errorf("creating the extstore file: %w", err)
	}
	if err := os.Chmod(file, 0o666); err != nil {
		return memcachedRun{}, fmt.Errorf("opening the extstore file to memcached: %w", err)
	}
	// A sparse file: it takes no room. The filesystem may refuse sizes
	// beyond its own limits; memcached empties the file anyway.
	_ = os.Truncate(file, fileMB<<20)
	for attempt := 0; ; attempt++ {
		run, busy, err := startExtstore(ctx, binary, args, want)
		if err != nil || !busy || attempt == 5 {
			return run, err
		}
	}
}

// startExtstore runs memcached once; busy is true when the port it was given
// was taken in the meantime, by another test's memcached.
func startExtstore(ctx context.Context, binary string, args []string, want map[string]string) (memcachedRun, bool, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return memcachedRun{}, false, fmt.Errorf("finding a free port: %w", err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	if err := l.Close(); err != nil {
		return memcachedRun{}, false, fmt.Errorf("freeing the port: %w", err)
	}
	args = slices.Clone(args)
	i := slices.Index(args, "-p")
	if i < 0 || args[i+1] != strconv.Itoa(memcached.Port) {
		return memcachedRun{}, false, fmt.Errorf("the rendered arguments %q do not set -p %d", args, memcached.Port)
	}
	args[i+1] = port
	args = append(args, "-l", "127.0.0.1")
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.CommandContext(ctx, binary, args...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		return memcachedRun{}, false, fmt.Errorf("starting %s: %w", binary, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	addr := net.JoinHostPort("127.0.0.1", port)
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	// Generous: the machines that run the tests may be busy.
	deadline := time.After(time.Minute)
	for {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			break
		}
		select {
		case <-exited:
			out := strings.TrimSpace(output.String())
			return memcachedRun{reason: out}, strings.Contains(out, "failed to listen"), nil
		case <-deadline:
			return memcachedRun{}, false, fmt.Errorf("memcached %q neither started nor exited in a minute: %s", args, output.String())
		case <-ticker.C:
		}
	}
	stats, err := statsOf(addr, "stats")
	var settings map[string]string
	if err == nil {
		settings, err = statsOf(addr, "stats settings")
	}
	if err != nil {
		// The connection broke: this memcached stopped, and its output
		// says why; or what answered was another test's, stopping.
		select {
		case <-exited:
			return memcachedRun{reason: strings.TrimSpace(output.String())}, false, nil
		case <-time.After(2 * time.Second):
			return memcachedRun{}, true, nil
		}
	}
	if stats["pid"] != strconv.Itoa(cmd.Process.Pid) {
		// Another memcached took the port first, and this one answers
		// nothing.
		return memcachedRun{}, true, nil
	}
	maps.Copy(settings, stats)
	if settings["extstore_limit_maxbytes"] == "" || settings["extstore_limit_maxbytes"] == "0" {
		return memcachedRun{reason: "started without a page of extstore: extstore_limit_maxbytes=" + settings["extstore_limit_maxbytes"]}, false, nil
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if settings[name] != want[name] {
			return memcachedRun{reason: fmt.Sprintf("started with %s %s, not %s", name, settings[name], want[name])}, false, nil
		}
	}
	return memcachedRun{works: true}, false, nil
}

// statsOf returns the answer of memcached at addr to a stats command.
func statsOf(addr, command string) (map[string]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connecting to memcached: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\r\n", command); err != nil {
		return nil, fmt.Errorf("sending %s: %w", command, err)
	}
	out := map[string]string{}
	buf := make([]byte, 4096)
	var all bytes.Buffer
	for !bytes.HasSuffix(all.Bytes(), []byte("END\r\n")) {
		n, err := conn.Read(buf)
		all.Write(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("reading the answer to %s: %w", command, err)
		}
	}
	for l := range strings.Lines(all.String()) {
		if fields := strings.Fields(l); len(fields) == 3 && fields[0] == "STAT" {
			out[fields[1]] = fields[2]
		}
	}
	return out, nil
}

// renderedSettings returns what `stats` and `stats settings` must show for
// spec: the file's whole pages, the item size and the extstore settings.
func renderedSettings(spec *cachev1alpha1.MemcachedSpec) map[string]string {
	e := spec.Extstore
	pages := memcached.ExtstoreFileMB(spec) / memcached.ExtstorePageMB
	return map[string]string{
		"extstore_limit_maxbytes": strconv.FormatInt(pages*memcached.ExtstorePageMB<<20, 10),
		"item_size_max":           strconv.Itoa(int(spec.GetMaxItemSizeKB()) * 1024),
		"ext_wbuf_size":           strconv.Itoa(int(e.GetWriteBufferMB()) << 20),
		"ext_item_size":           strconv.Itoa(int(e.GetItemSizeBytes())),
		"ext_recache_rate":        strconv.Itoa(int(e.GetRecacheRate())),
		"slab_automove_freeratio": fmt.Sprintf("%.3f", float64(e.GetFreeMemoryPercent())/100),
	}
}

// extstoreAPIServer starts a kube-apiserver with the CRD of config/crd/bases
// and returns a client of it.
func extstoreAPIServer(t *testing.T) client.Client {
	t.Helper()
	_, cfg := apiserver.Start(t, filepath.Join("..", "..", "config", "crd", "bases"))
	cfg.QPS, cfg.Burst = -1, -1
	scheme := runtime.NewScheme()
	if err := cachev1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// admitSpec creates a Memcached with spec in a server-side dry run, and
// returns the API server's refusal, or nil; err is any other error.
func admitSpec(ctx context.Context, c client.Client, name string, spec map[string]any) (refusal, err error) {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": cachev1alpha1.GroupVersion.String(), "kind": "Memcached",
		"metadata": map[string]any{"namespace": "default", "name": name},
		"spec":     runtime.DeepCopyJSONValue(spec),
	}}
	err = c.Create(ctx, obj, client.DryRunAll)
	switch {
	case err == nil:
		return nil, nil
	case apierrors.IsInvalid(err):
		return err, nil
	}
	return nil, fmt.Errorf("creating Memcached %s: %w", name, err)
}

// agreementCounts are the figures of TestExtstoreRulesAgreeWithRealMemcached.
type agreementCounts struct {
	mu                              sync.Mutex
	admitted, refused, beyond       int
	runs, works, refusedByMemcached int
	policyButStarts                 int
	disagreements                   []string
	refusedByMemcachedReasons       map[string]int
	refusalsByRule                  map[string]int
}

func (c *agreementCounts) disagree(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disagreements = append(c.disagreements, fmt.Sprintf(format, args...))
}

// TestExtstoreRulesAgreeWithRealMemcached generates specs with extstore from
// a fixed seed and checks, for each, that the API server (the CRD's schema
// and validation rules, in a server-side dry run) and the operator's checks
// agree, and that the real memcached, run with the command line the
// operator renders and a file of the rendered size, starts with extstore as
// rendered exactly when neither refuses the spec for memcached's sake: what
// admission admits, memcached runs; what memcached refuses, admission
// refuses. Specs that only the schema refuses (values beyond its bounds) must
// be refused by the API server; the operator does not check them.
func TestExtstoreRulesAgreeWithRealMemcached(t *testing.T) {
	started := time.Now()
	binaries := []string{memcachedBinary(t)}
	if proxy := os.Getenv("MEMCACHED_PROXY_BINARY"); proxy != "" {
		// Debian trixie's, the real node image's memcached.
		binaries = append(binaries, proxy)
	}
	versions := make([]string, len(binaries))
	for i, b := range binaries {
		v := memcachedVersion(t, b)
		versions[i] = fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2])
	}
	c := extstoreAPIServer(t)
	apiServerReady := time.Since(started)
	specs := generateExtstoreSpecs(extstoreSpecCount)

	counts := &agreementCounts{refusedByMemcachedReasons: map[string]int{}, refusalsByRule: map[string]int{}}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range work {
				checkExtstoreSpec(t.Context(), c, i, specs[i], binaries, versions, counts)
			}
		})
	}
	for i := range specs {
		work <- i
	}
	close(work)
	wg.Wait()

	t.Logf("%d generated specs (seed %d) checked in %v, after %v for the API server: admission and the operator agree on "+
		"%d admitted and %d refused, and %d are refused by admission alone", len(specs), extstoreSeed,
		(time.Since(started) - apiServerReady).Round(time.Millisecond), apiServerReady.Round(time.Millisecond),
		counts.admitted, counts.refused, counts.beyond)
	t.Logf("%d specs run by each of memcached %s (%d runs): %d runs with extstore as rendered, %d refused or without a page; "+
		"%d runs started with specs refused only for the operator's own reasons (Deployment, warm restart, memory limit)",
		counts.runs/len(binaries), strings.Join(versions, " and "), counts.runs, counts.works, counts.refusedByMemcached,
		counts.policyButStarts)
	for _, reason := range slices.Sorted(maps.Keys(counts.refusedByMemcachedReasons)) {
		t.Logf("  memcached: %4d x %s", counts.refusedByMemcachedReasons[reason], reason)
	}
	for _, rule := range slices.Sorted(maps.Keys(counts.refusalsByRule)) {
		t.Logf("  refused:   %4d x %s", counts.refusalsByRule[rule], rule)
	}
	t.Logf("%d disagreements", len(counts.disagreements))
	for i, d := range counts.disagreements {
		if i == 30 {
			t.Errorf("... and %d more", len(counts.disagreements)-i)
			break
		}
		t.Error(d)
	}
	for name, n := range map[string]int{"admitted": counts.admitted, "refused": counts.refused,
		"beyond the schema": counts.beyond, "run with extstore": counts.works, "refused by memcached": counts.refusedByMemcached} {
		if n < len(specs)/20 {
			t.Errorf("the generated specs are lopsided: only %d %s", n, name)
		}
	}
}

// checkExtstoreSpec checks one generated spec, recording what it finds.
func checkExtstoreSpec(ctx context.Context, c client.Client, i int, spec map[string]any, binaries, versions []string, counts *agreementCounts) {
	refusal, err := admitSpec(ctx, c, fmt.Sprintf("extstore-%d", i), spec)
	if err != nil {
		counts.disagree("spec %d %v: %v", i, spec, err)
		return
	}
	typed := &cachev1alpha1.MemcachedSpec{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(spec, typed); err != nil {
		counts.disagree("spec %d %v: %v", i, spec, err)
		return
	}
	if !checkAdmission(i, spec, typed, refusal, counts) {
		return
	}
	// What memcached makes of the spec's extstore: the spec as a pod of a
	// StatefulSet without warm restart or a memory limit would run it, for
	// those are the operator's reasons, not memcached's.
	if !typed.ExtstoreEnabled() || memcached.CheckExtraArgs(typed) != nil || memcached.ExtstoreFileMB(typed) == 0 {
		return
	}
	core := typed.DeepCopy()
	core.Workload, core.WarmRestart, core.Resources = cachev1alpha1.WorkloadStatefulSet, nil, nil
	coreErr := memcached.CheckExtstore(core)
	_, halfRule := beyondAdmission(spec)
	refusedForMemcached := forMemcached(coreErr) || halfRule != ""
	for b, binary := range binaries {
		run, args, err := runRendered(ctx, binary, core)
		if err != nil {
			counts.disagree("spec %d %v, memcached %s: %v", i, spec, versions[b], err)
			continue
		}
		counts.mu.Lock()
		counts.runs++
		if run.works {
			counts.works++
			if refusal != nil && !refusedForMemcached {
				counts.policyButStarts++
			}
		} else {
			counts.refusedByMemcached++
			line, _, _ := strings.Cut(run.reason, "\n")
			counts.refusedByMemcachedReasons[versions[b]+": "+withoutNumbers(line)]++
		}
		counts.mu.Unlock()
		switch {
		case run.works && refusedForMemcached:
			counts.disagree("spec %d %v: memcached %s runs it with extstore as rendered, but it is refused for memcached's sake: %v%s",
				i, spec, versions[b], coreErr, halfRule)
		case !run.works && !refusedForMemcached:
			counts.disagree("spec %d %v: no check refuses its settings for memcached's sake (admission: %v), but memcached %s does not run it: %s\nargs: %q",
				i, spec, refusal, versions[b], run.reason, args)
		}
	}
}

// checkAdmission checks that admission and the operator agree on spec, or
// that admission alone refuses it when it should, and reports whether
// memcached's verdict is still to be checked.
func checkAdmission(i int, spec map[string]any, typed *cachev1alpha1.MemcachedSpec, refusal error, counts *agreementCounts) bool {
	counts.mu.Lock()
	defer counts.mu.Unlock()
	if rule, want := beyondAdmission(spec); rule != "" {
		counts.beyond++
		counts.refusalsByRule["admission only: "+rule]++
		if refusal == nil || !strings.Contains(refusal.Error(), want) {
			counts.disagreements = append(counts.disagreements,
				fmt.Sprintf("spec %d %v: admission does not refuse it for %s: %v", i, spec, rule, refusal))
		}
		// memcached refuses item sizes above half of -m itself; values
		// beyond the schema's bounds are not rendered as sent.
		return strings.Contains(rule, "half of memoryMB")
	}
	goErr := operatorVerdict(typed)
	switch {
	case refusal == nil && goErr != nil:
		counts.disagreements = append(counts.disagreements,
			fmt.Sprintf("spec %d %v: admitted, but the operator refuses it: %v", i, spec, goErr))
	case refusal != nil && goErr == nil:
		counts.disagreements = append(counts.disagreements,
			fmt.Sprintf("spec %d %v: the operator accepts it, but admission refuses it: %v", i, spec, refusal))
	case refusal != nil:
		counts.refused++
		rule := goErr.Error()
		if fe, ok := errors.AsType[*field.Error](goErr); ok {
			rule = fe.Field + ": " + fe.Detail
			if fe.Type == field.ErrorTypeNotSupported {
				rule = fe.Field + ": not supported"
			}
		}
		counts.refusalsByRule[withoutNumbers(rule)]++
	default:
		counts.admitted++
	}
	return true
}

// runRendered runs binary with the command line the operator renders for
// spec, its extstore file in a directory of its own, and returns what it
// made of it and the arguments.
func runRendered(ctx context.Context, binary string, spec *cachev1alpha1.MemcachedSpec) (memcachedRun, []string, error) {
	dir, err := os.MkdirTemp("", "memcached-extstore-")
	if err != nil {
		return memcachedRun{}, nil, fmt.Errorf("making the extstore directory: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o777); err != nil {
		return memcachedRun{}, nil, fmt.Errorf("opening the extstore directory to memcached: %w", err)
	}
	args := withDirs(memcached.Args(spec), map[string]string{memcached.ExtstoreDir: dir})
	run, err := runExtstore(ctx, binary, args, dir, memcached.ExtstoreFileMB(spec), renderedSettings(spec))
	return run, args, err
}

// withoutNumbers returns message with its numbers made #, to count messages
// by their kind.
func withoutNumbers(message string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '#'
		}
		return r
	}, message)
}
