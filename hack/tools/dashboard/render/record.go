package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
)

// The labels the ServiceMonitor of the Memcached example-memcached in the
// namespace default gives every series (docs/monitoring.md); instance is the
// server's loopback address here.
const (
	namespace = "default"
	memcached = "example-memcached"
)

// The names of the labels the dashboard's variables select by.
const (
	namespaceLabel = "namespace"
	memcachedLabel = "memcached"
	instanceLabel  = "instance"
)

// Each server's memcached settings: 16 MiB of memory, so that the load's
// working set does not fit and the servers evict, and the operator's default
// connection limit.
const (
	memoryMB       = 16
	maxConnections = 1024
)

// keys is the number of keys the load uses; with values of 2 to 12 KiB they
// are about twice the servers' memory.
const keys = 6000

// recording is what record leaves for the queries: the TSDB with the
// scraped series, and the time range they cover.
type recording struct {
	db                 *tsdb.DB
	start, end         time.Time
	step, rateInterval time.Duration
	// restartedPod is the server restarted restartedAfter the start.
	restartedPod   string
	restartedAfter time.Duration
}

// server is one memcached process, named after the pod it stands for.
type server struct {
	binary string
	pod    string
	addr   string
	dir    string
	cmd    *exec.Cmd
	done   chan struct{}
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitListening waits until something accepts connections at addr.
func waitListening(ctx context.Context, addr string, done <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return fmt.Errorf("the process for %s exited", addr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startProcess starts binary with args, its output to the file log in dir,
// and returns a channel closed when it exits.
func startProcess(binary, logFile string, args ...string) (*exec.Cmd, chan struct{}, error) {
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", logFile, err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}()
	return cmd, done, nil
}

// start starts the memcached of s and waits until it accepts connections.
func (s *server) start(ctx context.Context) error {
	args := []string{"-p", strconv.Itoa(port(s.addr)), "-l", "127.0.0.1",
		"-m", strconv.Itoa(memoryMB), "-c", strconv.Itoa(maxConnections)}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root.
		args = append(args, "-u", "nobody")
	}
	cmd, done, err := startProcess(s.binary, filepath.Join(s.dir, s.pod+".log"), args...)
	if err != nil {
		return err
	}
	s.cmd, s.done = cmd, done
	return waitListening(ctx, s.addr, done)
}

// stop stops the memcached of s and waits until it exited.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// port returns the port of the address addr.
func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// record runs the servers, the exporter and the load for o.duration, and
// scrapes every server through the exporter every o.scrapeInterval into a
// TSDB in dir. At 60% of the run, it restarts the second server, as a
// replaced pod would be.
func record(ctx context.Context, o options, dir string) (*recording, error) {
	servers := make([]*server, 2)
	for i, pod := range []string{"example-memcached-5c9d7b6f4-2sk2f", "example-memcached-5c9d7b6f4-x7q9m"} {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		servers[i] = &server{binary: o.memcached, pod: pod, addr: addr, dir: dir}
		if err := servers[i].start(ctx); err != nil {
			return nil, fmt.Errorf("starting memcached: %w", err)
		}
		defer servers[i].stop()
	}
	exporterAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	exporter, exporterDone, err := startProcess(o.exporter, filepath.Join(dir, "exporter.log"),
		"--web.listen-address="+exporterAddr)
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = exporter.Process.Kill()
		<-exporterDone
	}()
	if err := waitListening(ctx, exporterAddr, exporterDone); err != nil {
		return nil, fmt.Errorf("starting memcached_exporter: %w", err)
	}

	opts := tsdb.DefaultOptions()
	db, err := tsdb.Open(filepath.Join(dir, "tsdb"), nil, nil, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("opening the TSDB: %w", err)
	}
	rec := &recording{db: db, step: o.scrapeInterval,
		// Grafana's $__rate_interval: four scrape intervals at least.
		rateInterval: 4 * o.scrapeInterval,
	}

	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	rec.start = time.Now()
	restartAt := rec.start.Add(o.duration * 6 / 10)
	var wg sync.WaitGroup
	loadCtx, stopLoad := context.WithCancel(runCtx)
	defer func() {
		stopLoad()
		wg.Wait()
	}()
	addrs := []string{servers[0].addr, servers[1].addr}
	wg.Go(func() { load(loadCtx, addrs, rec.start, o.duration, o.opsPerSecond) })

	ticker := time.NewTicker(o.scrapeInterval)
	defer ticker.Stop()
	restarted := false
	for {
		now := time.Now()
		for _, s := range servers {
			if err := scrape(runCtx, db, exporterAddr, s, now); err != nil && runCtx.Err() == nil {
				return nil, err
			}
		}
		rec.end = now
		if !restarted && now.After(restartAt) {
			restarted = true
			log.Printf("restarting the memcached of %s", servers[1].pod)
			servers[1].stop()
			if err := servers[1].start(ctx); err != nil {
				return nil, fmt.Errorf("restarting memcached: %w", err)
			}
			rec.restartedPod, rec.restartedAfter = servers[1].pod, time.Since(rec.start).Round(time.Second)
		}
		select {
		case <-runCtx.Done():
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return rec, nil
		case <-ticker.C:
		}
	}
}

// load drives gets and sets against the servers at addrs, as an application
// that caches what it reads would: a get, and a set of the key when it
// misses, with a few touches and deletes; the keys' popularity follows
// Zipf's law. It ramps up to opsPerSecond over the first third of duration.
func load(ctx context.Context, addrs []string, start time.Time, duration time.Duration, opsPerSecond int) {
	const workers = 8
	client := memcache.New(addrs...)
	client.MaxIdleConns = workers
	client.Timeout = time.Second
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			zipf := rand.NewZipf(r, 1.05, 8, keys-1)
			value := make([]byte, 12<<10)
			for ctx.Err() == nil {
				rate := float64(opsPerSecond) / workers
				if ramp := time.Since(start).Seconds() / (duration.Seconds() / 3); ramp < 1 {
					rate *= 0.3 + 0.7*ramp
				}
				key := "item:" + strconv.FormatUint(zipf.Uint64(), 10)
				switch n := r.IntN(100); {
				case n < 2:
					_ = client.Delete(key)
				case n < 5:
					_ = client.Touch(key, 600)
				default:
					if _, err := client.Get(key); errors.Is(err, memcache.ErrCacheMiss) {
						size := 2<<10 + r.IntN(10<<10)
						_ = client.Set(&memcache.Item{Key: key, Value: value[:size], Expiration: 600})
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(float64(time.Second) / rate)):
				}
			}
		})
	}
	wg.Wait()
}

// scrape scrapes s through the exporter's /scrape endpoint, as the
// ServiceMonitor has Prometheus do, and appends the samples at t with the
// labels the ServiceMonitor and prometheus-operator add.
func scrape(ctx context.Context, db *tsdb.DB, exporterAddr string, s *server, t time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://"+exporterAddr+"/scrape?target="+s.addr, nil)
	if err != nil {
		return fmt.Errorf("scraping %s: %w", s.addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("scraping %s: %w", s.addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scraping %s: status %d, %w", s.addr, resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("parsing the scrape of %s: %w", s.addr, err)
	}
	target := map[string]string{
		namespaceLabel: namespace,
		memcachedLabel: memcached,
		instanceLabel:  s.addr,
		"pod":          s.pod,
		"job":          memcached + "-headless",
		"service":      memcached + "-headless",
		"endpoint":     "memcached",
	}
	app := db.Appender(ctx)
	ts := t.UnixMilli()
	for name, family := range families {
		for _, m := range family.GetMetric() {
			v, ok := value(family.GetType(), m)
			if !ok {
				continue
			}
			b := labels.NewBuilder(labels.EmptyLabels())
			b.Set(model.MetricNameLabel, name)
			for _, pair := range m.GetLabel() {
				b.Set(pair.GetName(), pair.GetValue())
			}
			for k, v := range target {
				b.Set(k, v)
			}
			if _, err := app.Append(0, b.Labels(), ts, v); err != nil {
				_ = app.Rollback()
				return fmt.Errorf("appending %s: %w", name, err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("committing the scrape of %s: %w", s.addr, err)
	}
	return nil
}

// value returns the value of the sample m of a family of type typ; false
// for the types the exporter does not use (histograms, summaries).
func value(typ dto.MetricType, m *dto.Metric) (float64, bool) {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), true
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), true
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), true
	default:
		return 0, false
	}
}
