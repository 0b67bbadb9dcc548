// Package proxy runs the proxy tier the operator renders, memcached in proxy
// mode with the routes file of internal/memcached, in front of real memcached
// servers on loopback, with a real client: that it serves, what a client sees
// when a server is down, what a reload does, how many keys move when the ring
// grows, and what the proxy costs.
package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"k8s.io/apimachinery/pkg/util/wait"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/test/internal/proc"
)

// proxyBinary returns the memcached built with the proxy that make test
// provides (MEMCACHED_PROXY_BINARY, from hack/fetch-memcached-proxy.sh).
func proxyBinary(tb testing.TB) string {
	tb.Helper()
	binary := os.Getenv("MEMCACHED_PROXY_BINARY")
	if binary == "" {
		tb.Fatal("no memcached with the proxy: run 'make memcached-proxy' and set MEMCACHED_PROXY_BINARY to the path 'hack/fetch-memcached-proxy.sh --print-path' prints, or run 'make test'")
	}
	if _, err := os.Stat(binary); err != nil {
		tb.Fatalf("MEMCACHED_PROXY_BINARY %s: %v: run 'make memcached-proxy'", binary, err)
	}
	return binary
}

// serverBinary returns the memcached the servers run: MEMCACHED_BINARY
// (Debian's 1.6.18, as make test provides it), else the proxy's binary.
func serverBinary(tb testing.TB) string {
	tb.Helper()
	if binary := os.Getenv("MEMCACHED_BINARY"); binary != "" {
		return binary
	}
	return proxyBinary(tb)
}

// process is a memcached of a test, server or proxy.
type process struct {
	addr string
	args []string
	log  string
	p    *proc.Process
}

// local returns args with -p 11211 swapped for port, listening on loopback
// only, and, as root, dropping to nobody (memcached refuses to run as root).
func local(tb testing.TB, args []string, port int) []string {
	tb.Helper()
	args = slices.Clone(args)
	i := slices.Index(args, "-p")
	if i < 0 || args[i+1] != strconv.Itoa(memcached.Port) {
		tb.Fatalf("the rendered arguments %q do not set -p %d", args, memcached.Port)
	}
	args[i+1] = strconv.Itoa(port)
	args = append(args, "-l", "127.0.0.1")
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	return args
}

// start runs binary with args, its output in the test's log directory, and
// returns it once it accepts connections on port; it is killed when the
// test ends.
func start(tb testing.TB, name, binary string, args []string, port int) *process {
	tb.Helper()
	logPath := filepath.Join(tb.TempDir(), name+".log")
	p, err := proc.Start(name, logPath, binary, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Kill)
	s := &process{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), args: args, log: logPath, p: p}
	if err := waitAccepting(tb.Context(), s.addr, p, 10*time.Second); err != nil {
		out, _ := os.ReadFile(logPath)
		tb.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return s
}

// waitAccepting polls until addr accepts a connection, p exits or timeout
// passes.
func waitAccepting(ctx context.Context, addr string, p *proc.Process, timeout time.Duration) error {
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return true, conn.Close()
		}
		lastErr = err
		return false, p.Exited()
	})
	if wait.Interrupted(err) {
		return fmt.Errorf("did not accept connections on %s within %s: %w", addr, timeout, lastErr)
	}
	return err
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports, err := proc.FreeLoopbackPorts(n)
	if err != nil {
		tb.Fatal(err)
	}
	return ports
}

// startServers runs n memcached servers with the command line the operator
// renders for the defaults, on loopback ports.
func startServers(tb testing.TB, n int) []*process {
	tb.Helper()
	binary := serverBinary(tb)
	servers := make([]*process, n)
	for i, port := range freePorts(tb, n) {
		servers[i] = start(tb, fmt.Sprintf("server-%d", i), binary,
			local(tb, memcached.Args(&cachev1alpha1.MemcachedSpec{}), port), port)
	}
	return servers
}

// proxyTier is a proxy and its routes file.
type proxyTier struct {
	*process
	routes string
}

// startProxy runs the proxy with the command line ProxyArgs renders and the
// routes file ProxyRoutes renders for servers, made local: its routes file
// in a directory of the test's.
func startProxy(tb testing.TB, servers []string) *proxyTier {
	tb.Helper()
	// Not tb.TempDir: its parent is private to the test's user, and the
	// proxy reads the file as nobody when the test runs as root.
	dir, err := os.MkdirTemp("", "memcached-proxy-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	tier := &proxyTier{routes: filepath.Join(dir, memcached.ProxyRoutesKey)}
	tier.write(tb, servers)
	args := memcached.ProxyArgs(memcached.ProxyOptions{})
	for i, arg := range args {
		args[i] = strings.ReplaceAll(arg, memcached.ProxyConfigDir+"/", dir+"/")
	}
	if !slices.Contains(args, "proxy_config=routelib,proxy_arg="+tier.routes) {
		tb.Fatalf("the rendered arguments %q do not read the routes file from %s", args, memcached.ProxyConfigDir)
	}
	port := freePorts(tb, 1)[0]
	tier.process = start(tb, "proxy", proxyBinary(tb), local(tb, args, port), port)
	return tier
}

// write renders the routes file for servers, replacing the one there.
func (tier *proxyTier) write(tb testing.TB, servers []string) {
	tb.Helper()
	routes, err := memcached.ProxyRoutes(servers)
	if err != nil {
		tb.Fatal(err)
	}
	tmp := tier.routes + ".tmp"
	if err := os.WriteFile(tmp, routes, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, tier.routes); err != nil {
		tb.Fatal(err)
	}
}

// reload has the proxy reload its routes file, as the operator's pod does
// when the file changes, and returns once it has, with how long it took.
func (tier *proxyTier) reload(tb testing.TB) time.Duration {
	tb.Helper()
	before := stats(tb, tier.addr)
	began := time.Now()
	if err := syscall.Kill(tier.p.PID(), syscall.SIGHUP); err != nil {
		tb.Fatal(err)
	}
	var after map[string]string
	err := wait.PollUntilContextTimeout(tb.Context(), 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		after = stats(tb, tier.addr)
		if after["proxy_config_reload_fails"] != before["proxy_config_reload_fails"] {
			return false, fmt.Errorf("the proxy failed to reload its routes file: proxy_config_reload_fails %s → %s",
				before["proxy_config_reload_fails"], after["proxy_config_reload_fails"])
		}
		return after["proxy_config_reloads"] != before["proxy_config_reloads"], nil
	})
	if wait.Interrupted(err) {
		tb.Fatalf("the proxy did not reload within 10s: proxy_config_reloads still %s", after["proxy_config_reloads"])
	}
	if err != nil {
		tb.Fatal(err)
	}
	return time.Since(began)
}

func addrs(servers []*process) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.addr
	}
	return out
}

// stats returns memcached's `stats`.
func stats(tb testing.TB, addr string) map[string]string {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprint(conn, "stats\r\n"); err != nil {
		tb.Fatal(err)
	}
	out := map[string]string{}
	scanner := bufio.NewScanner(conn)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "END" {
			return out
		}
		if fields := strings.Fields(line); len(fields) == 3 && fields[0] == "STAT" {
			out[fields[1]] = fields[2]
		}
	}
	tb.Fatalf("stats of %s ended without END: %v", addr, scanner.Err())
	return nil
}

// currItems returns the number of items a server holds.
func currItems(tb testing.TB, addr string) int {
	tb.Helper()
	n, err := strconv.Atoi(stats(tb, addr)["curr_items"])
	if err != nil {
		tb.Fatalf("curr_items of %s: %v", addr, err)
	}
	return n
}

func client(addr string, conns int) *memcache.Client {
	c := memcache.New(addr)
	c.MaxIdleConns = conns
	c.Timeout = 3 * time.Second
	return c
}

func key(i int) string { return fmt.Sprintf("key-%d", i) }

func value(i int) []byte { return []byte(fmt.Sprintf("value-%d-%s", i, strings.Repeat("v", 90))) }

// setAll sets keys 0..n-1 through c.
func setAll(tb testing.TB, c *memcache.Client, n int) {
	tb.Helper()
	for i := range n {
		if err := c.Set(&memcache.Item{Key: key(i), Value: value(i)}); err != nil {
			tb.Fatalf("set %s: %v", key(i), err)
		}
	}
}

// placement returns, for each of keys 0..n-1, the index of the server that
// holds it, -1 for none, read from the servers directly.
func placement(tb testing.TB, servers []string, n int) []int {
	tb.Helper()
	where := make([]int, n)
	for i := range where {
		where[i] = -1
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = key(i)
	}
	for s, addr := range servers {
		c := client(addr, 2)
		for from := 0; from < n; from += 100 {
			items, err := c.GetMulti(keys[from:min(from+100, n)])
			if err != nil {
				tb.Fatalf("get from %s: %v", addr, err)
			}
			for k := range items {
				i, _ := strconv.Atoi(strings.TrimPrefix(k, "key-"))
				if where[i] != -1 {
					tb.Fatalf("%s is on server %d and %d", k, where[i], s)
				}
				where[i] = s
			}
		}
	}
	return where
}

// percentile returns the p-th percentile (0 to 100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p/100))]
}
