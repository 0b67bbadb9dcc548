package scrape

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/test/internal/proc"
	"example.com/memcached-operator/test/internal/testca"
)

// binary returns the path that the environment variable env names, which
// make test sets after make target provides it.
func binary(t *testing.T, env, target string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		t.Fatalf("%s is not set: run `make test`, which runs `make %s` and sets it", env, target)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s: %v: run `make %s`", env, err, target)
	}
	return path
}

// exporterMemcached returns a Memcached with monitoring on, and TLS and the
// client certificate of the exporter if withTLS and clientCertificate.
func exporterMemcached(withTLS, clientCertificate bool) *cachev1alpha1.Memcached {
	mc := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cache", UID: types.UID("cache-uid")},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1, MemoryMB: memoryMB,
			Monitoring: &cachev1alpha1.MonitoringSpec{Enabled: true}},
	}
	if withTLS {
		mc.Spec.TLS = &cachev1alpha1.TLSSpec{SecretName: "cache-tls", ClientCASecretName: "cache-client-ca"}
	}
	if clientCertificate {
		mc.Spec.Monitoring.TLS = &cachev1alpha1.MonitoringTLSSpec{ClientCertificateSecretName: "cache-exporter"}
	}
	return mc
}

// exporterArgs returns the arguments of the exporter's container in the
// Deployment the operator applies for mc.
func exporterArgs(t *testing.T, mc *cachev1alpha1.Memcached) []string {
	t.Helper()
	for _, o := range resources.Build(mc, resources.Inputs{}).Objects {
		if o.Kind != resources.DeploymentKind || o.GetName() != resources.ExporterName(mc) {
			continue
		}
		containers, _, err := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if err != nil {
			t.Fatalf("the exporter's Deployment: %v", err)
		}
		for _, c := range containers {
			c, _ := c.(map[string]any)
			if c["name"] != resources.ExporterContainerName {
				continue
			}
			args, _, err := unstructured.NestedStringSlice(c, "args")
			if err != nil {
				t.Fatalf("the exporter's arguments: %v", err)
			}
			return args
		}
		t.Fatalf("the exporter's Deployment has no container %q", resources.ExporterContainerName)
	}
	t.Fatal("Build applies no exporter Deployment for a Memcached with monitoring")
	return nil
}

// startProcess runs binary with args, its output in a log in the test's
// directory, and kills it when the test ends.
func startProcess(t *testing.T, name, binary string, args ...string) (*proc.Process, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	p, err := proc.Start(name, logPath, binary, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p, logPath
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ports, err := proc.FreeLoopbackPorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return ports[0]
}

// poll calls done until it returns true, failing the test if the process
// p exits first or a minute passes.
func poll(t *testing.T, p *proc.Process, logPath, what string, done func(context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := p.Exited(); err != nil {
			return false, err
		}
		ok, err := done(ctx)
		last = err
		return ok, nil
	})
	if err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("%s: %v (last: %v)\n%s", what, err, last, log)
	}
}

// startMemcached runs memcached with the arguments the operator renders for
// spec, listening on a free loopback port, with the directories the pod
// mounts replaced by dirs, and returns its address once it accepts
// connections.
func startMemcached(t *testing.T, binary string, spec *cachev1alpha1.MemcachedSpec, dirs map[string]string) string {
	t.Helper()
	args := slices.Clone(memcached.Args(spec))
	i := slices.Index(args, "-p")
	if i < 0 || args[i+1] != strconv.Itoa(memcached.Port) {
		t.Fatalf("the rendered arguments %q do not set -p %d", args, memcached.Port)
	}
	port := freePort(t)
	args[i+1] = strconv.Itoa(port)
	for i := range args {
		for from, to := range dirs {
			args[i] = strings.ReplaceAll(args[i], from+"/", to+"/")
		}
	}
	args = append(args, "-l", "127.0.0.1")
	if os.Geteuid() == 0 {
		// memcached refuses to run as root; in its container it runs as 11211.
		args = append(args, "-u", "nobody")
	}
	p, logPath := startProcess(t, "memcached", binary, args...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	poll(t, p, logPath, "memcached "+strings.Join(args, " ")+" accepting connections", func(context.Context) (bool, error) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err
		}
		return true, conn.Close()
	})
	return addr
}

// exporter is a memcached_exporter process.
type exporter struct {
	p       *proc.Process
	logPath string
	addr    string
}

// startExporter runs the exporter with args, its listen address replaced by
// a free loopback port and the directory of its client certificate by
// certDir, and returns it once it serves.
func startExporter(t *testing.T, binary string, args []string, certDir string) *exporter {
	t.Helper()
	args = slices.Clone(args)
	listen := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, "--web.listen-address=") })
	if listen < 0 {
		t.Fatalf("the rendered exporter arguments %q set no --web.listen-address", args)
	}
	e := &exporter{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))}
	args[listen] = "--web.listen-address=" + e.addr
	if certDir != "" {
		for i := range args {
			args[i] = strings.ReplaceAll(args[i], resources.ExporterTLSDir+"/", certDir+"/")
		}
	}
	e.p, e.logPath = startProcess(t, "memcached_exporter", binary, args...)
	poll(t, e.p, e.logPath, "memcached_exporter "+strings.Join(args, " ")+" serving", func(ctx context.Context) (bool, error) {
		_, err := get(ctx, "http://"+e.addr+"/metrics")
		return err == nil, err
	})
	return e
}

// scrape scrapes memcached at target through the exporter, as the
// ServiceMonitor has Prometheus do.
func (e *exporter) scrape(t *testing.T, target string) map[string]*dto.MetricFamily {
	t.Helper()
	if err := e.p.Exited(); err != nil {
		log, _ := os.ReadFile(e.logPath)
		t.Fatalf("%v\n%s", err, log)
	}
	body, err := get(t.Context(), "http://"+e.addr+resources.ScrapePath+"?target="+target)
	if err != nil {
		t.Fatal(err)
	}
	families, err := parse(body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// get returns the body of a GET of url, an error unless it is 200 OK.
func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// parse parses a scrape in Prometheus' text format.
func parse(body []byte) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("failed to parse the scrape: %w", err)
	}
	return families, nil
}

// value returns the value of the only series of the gauge or counter name.
func value(t *testing.T, families map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := families[name]
	if !ok || len(f.GetMetric()) != 1 {
		t.Fatalf("the scrape has no single series of %s: %v", name, f)
	}
	m := f.GetMetric()[0]
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// textClient speaks memcached's text protocol on one connection.
type textClient struct {
	conn   net.Conn
	reader *bufio.Reader
}

// do sends a command, with data if not nil, and returns the answer up to
// its last line: the line itself, or END after the values of a get.
func (c *textClient) do(command string, data []byte) (string, error) {
	if err := c.conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	request := command + "\r\n"
	if data != nil {
		request += string(data) + "\r\n"
	}
	if _, err := io.WriteString(c.conn, request); err != nil {
		return "", fmt.Errorf("%s: %w", command, err)
	}
	var answer strings.Builder
	for {
		line, err := c.reader.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("%s: %w", command, err)
		}
		answer.WriteString(line)
		fields := strings.Fields(line)
		if len(fields) == 4 && fields[0] == "VALUE" {
			n, err := strconv.Atoi(fields[3])
			if err != nil {
				return "", fmt.Errorf("%s: %q: %w", command, line, err)
			}
			if _, err := io.CopyN(io.Discard, c.reader, int64(n)+2); err != nil {
				return "", fmt.Errorf("%s: %w", command, err)
			}
			continue
		}
		return answer.String(), nil
	}
}

// generateActivity stores more than memoryMB holds, so that memcached
// evicts, and gets, misses, deletes, increments and touches keys, so that
// the counters of each have moved.
func generateActivity(t *testing.T, conn net.Conn, memoryMB int) {
	t.Helper()
	defer conn.Close()
	c := &textClient{conn: conn, reader: bufio.NewReader(conn)}
	data := bytes.Repeat([]byte("x"), 64*1024)
	items := 2 * memoryMB * 1024 * 1024 / len(data)
	expect := func(command string, data []byte, want string) {
		t.Helper()
		got, err := c.do(command, data)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, want) {
			t.Fatalf("%s: got %q, want %s", command, got, want)
		}
	}
	for i := range items {
		expect(fmt.Sprintf("set key-%d 0 0 %d", i, len(data)), data, "STORED")
	}
	expect(fmt.Sprintf("get key-%d", items-1), nil, "VALUE")
	expect("get key-0", nil, "END") // evicted
	expect("get absent", nil, "END")
	expect("set counter 0 0 1", []byte("1"), "STORED")
	expect("incr counter 1", nil, "2")
	expect("touch counter 60", nil, "TOUCHED")
	expect("delete counter", nil, "DELETED")
	expect("delete counter", nil, "NOT_FOUND")
}

// checkExporterNames checks that the scrape has every exporter name the
// sources use, and that it comes from a memcached that is up and evicted.
func checkExporterNames(t *testing.T, families map[string]*dto.MetricFamily) {
	t.Helper()
	if up := value(t, families, "memcached_up"); up != 1 {
		t.Fatalf("memcached_up is %v: the exporter could not read memcached's stats", up)
	}
	if evicted := value(t, families, "memcached_items_evicted_total"); evicted == 0 {
		t.Error("memcached evicted nothing: the activity did not fill its memory")
	}
	u := usedNames()
	names := u.names(fromExporter)
	if len(names) == 0 {
		t.Fatal("the sources use no exporter metric name")
	}
	if absent := missing(names, families); len(absent) > 0 {
		t.Errorf("%d of the %d exporter metric names the alerts and dashboard use are not in a real scrape of memcached_exporter:%s",
			len(absent), len(names), u.report(absent))
		return
	}
	if unmatched := u.unmatched(names, families); len(unmatched) > 0 {
		t.Errorf("no series of a real scrape of memcached_exporter has the label values these selectors ask for:\n  %s",
			strings.Join(unmatched, "\n  "))
		return
	}
	t.Logf("all %d exporter metric names the alerts and dashboard use are in the scrape (%d families), "+
		"with the label values of the %d selectors that ask for some: %s",
		len(names), len(families), u.checked(names), strings.Join(names, ", "))
}

// memoryMB is the memory of the memcached of the tests: little, so that a
// few megabytes of sets make it evict.
const memoryMB = 8

// TestExporterScrapeHasEveryName runs memcached without TLS, with some
// activity, and the exporter with the arguments the operator renders, and
// checks that its scrape has every exporter metric name the alerts and the
// dashboard use.
func TestExporterScrapeHasEveryName(t *testing.T) {
	exporterBinary := binary(t, "EXPORTER_BINARY", "exporter")
	memcachedBinary := binary(t, "MEMCACHED_BINARY", "memcached")
	mc := exporterMemcached(false, false)

	addr := startMemcached(t, memcachedBinary, &mc.Spec, nil)
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	generateActivity(t, conn, memoryMB)

	e := startExporter(t, exporterBinary, exporterArgs(t, mc), "")
	checkExporterNames(t, e.scrape(t, addr))
}

// TestExporterScrapeOverTLSWithClientCertificate runs memcached with TLS
// that requires client certificates, and the exporter with the arguments
// the operator renders for spec.monitoring.tls: its scrape has every
// exporter metric name the alerts and the dashboard use, and the exporter
// without the client certificate cannot read memcached.
func TestExporterScrapeOverTLSWithClientCertificate(t *testing.T) {
	exporterBinary := binary(t, "EXPORTER_BINARY", "exporter")
	memcachedBinary := binary(t, "MEMCACHED_BINARY", "memcached")
	withCertificate, withoutCertificate := exporterMemcached(true, true), exporterMemcached(true, false)

	serverCA, clientCA := testca.New(t, "server CA"), testca.New(t, "client CA")
	serverCert, serverKey := serverCA.Issue(t, "memcached", x509.ExtKeyUsageServerAuth)
	clientCertPEM, clientKeyPEM := clientCA.Issue(t, "exporter", x509.ExtKeyUsageClientAuth)
	tlsDir, caDir := readableDir(t), readableDir(t)
	writeFile(t, filepath.Join(tlsDir, corev1.TLSCertKey), serverCert)
	writeFile(t, filepath.Join(tlsDir, corev1.TLSPrivateKeyKey), serverKey)
	writeFile(t, filepath.Join(caDir, memcached.ClientCAKey), clientCA.CertPEM)
	certDir := t.TempDir()
	writeFile(t, filepath.Join(certDir, corev1.TLSCertKey), clientCertPEM)
	writeFile(t, filepath.Join(certDir, corev1.TLSPrivateKeyKey), clientKeyPEM)

	addr := startMemcached(t, memcachedBinary, &withCertificate.Spec,
		map[string]string{memcached.TLSDir: tlsDir, memcached.ClientCADir: caDir})
	clientCert, err := tls.X509KeyPair(clientCertPEM, clientKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr,
		&tls.Config{Certificates: []tls.Certificate{clientCert}, InsecureSkipVerify: true}) //nolint:gosec // as the exporter does
	if err != nil {
		t.Fatalf("a client with a certificate of the client CA cannot connect: %v", err)
	}
	generateActivity(t, conn, memoryMB)

	t.Run("with the client certificate", func(t *testing.T) {
		args := exporterArgs(t, withCertificate)
		for _, want := range []string{"--memcached.tls.enable", "--memcached.tls.cert-file=" + resources.ExporterTLSDir + "/" + corev1.TLSCertKey,
			"--memcached.tls.key-file=" + resources.ExporterTLSDir + "/" + corev1.TLSPrivateKeyKey} {
			if !slices.Contains(args, want) {
				t.Fatalf("the exporter's rendered arguments %q lack %s: it cannot present spec.monitoring.tls' certificate", args, want)
			}
		}
		e := startExporter(t, exporterBinary, args, certDir)
		checkExporterNames(t, e.scrape(t, addr))
	})

	t.Run("without a client certificate", func(t *testing.T) {
		args := exporterArgs(t, withoutCertificate)
		if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--memcached.tls.cert-file") }) {
			t.Fatalf("the exporter's rendered arguments %q have a client certificate, though spec.monitoring.tls is not set", args)
		}
		e := startExporter(t, exporterBinary, args, certDir)
		if up := value(t, e.scrape(t, addr), "memcached_up"); up != 0 {
			t.Errorf("memcached_up is %v without a client certificate, want 0: memcached must refuse the exporter", up)
		}
	})
}

// readableDir returns a temporary directory that memcached can read when
// it drops root to nobody.
func readableDir(t *testing.T) string {
	t.Helper()
	// Not t.TempDir: its parent is private to the test's user.
	dir, err := os.MkdirTemp("", "memcached-scrape-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
