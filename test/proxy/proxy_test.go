package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/grafana/dskit/cache"
	"k8s.io/apimachinery/pkg/util/wait"
)

const keys = 10_000

// TestProxyServes runs the proxy on the routes file of four servers, sets
// and gets 10,000 keys through it, and finds every key back, spread over
// every server.
func TestProxyServes(t *testing.T) {
	servers := startServers(t, 4)
	tier := startProxy(t, addrs(servers))
	c := client(tier.addr, 4)

	setAll(t, c, keys)
	for i := range keys {
		item, err := c.Get(key(i))
		if err != nil {
			t.Fatalf("get %s through the proxy: %v", key(i), err)
		}
		if string(item.Value) != string(value(i)) {
			t.Fatalf("get %s through the proxy: %q, want %q", key(i), item.Value, value(i))
		}
	}

	counts := make([]int, len(servers))
	total := 0
	for i, s := range servers {
		counts[i] = currItems(t, s.addr)
		total += counts[i]
		if counts[i] < keys/len(servers)*8/10 || counts[i] > keys/len(servers)*12/10 {
			t.Errorf("server %d holds %d of the %d keys, want about a quarter", i, counts[i], keys)
		}
	}
	if total != keys {
		t.Errorf("the servers hold %d items, want the %d keys set, each once", total, keys)
	}

	// The proxy and dskit's jump-hash selector, which Mimir, Loki and Thanos
	// use directly, both hash with jump hash, but of different key hashes
	// (XXH3 and XXH64): they agree on a key's server by chance only.
	where := placement(t, addrs(servers), keys)
	var selector cache.MemcachedJumpHashSelector
	if err := selector.SetServers(addrs(servers)...); err != nil {
		t.Fatal(err)
	}
	ordered := slices.Clone(addrs(servers))
	same := 0
	for i := range keys {
		addr, err := selector.PickServer(key(i))
		if err != nil {
			t.Fatal(err)
		}
		if where[i] >= 0 && addr.String() == ordered[where[i]] {
			same++
		}
	}
	t.Logf("10,000 keys through the proxy, per server: %v; on the server dskit's jump-hash selector picks: %.1f%%",
		counts, 100*float64(same)/keys)
}

// TestProxyNoServers renders the routes file of an empty server list: the
// proxy starts, every get misses and nothing is stored.
func TestProxyNoServers(t *testing.T) {
	tier := startProxy(t, nil)
	c := client(tier.addr, 1)
	err := c.Set(&memcache.Item{Key: "k", Value: []byte("v")})
	_, getErr := c.Get("k")
	t.Logf("no servers: set → %v, get → %v", err, getErr)
	if !errors.Is(getErr, memcache.ErrCacheMiss) {
		t.Errorf("get with no servers: %v, want a miss", getErr)
	}
}

// outcome is what a client saw for one request.
type outcome struct {
	hits, misses, errs int
	latencies          []time.Duration
	firstErr           error
}

func (o *outcome) record(err error, took time.Duration) {
	o.latencies = append(o.latencies, took)
	switch {
	case err == nil:
		o.hits++
	case errors.Is(err, memcache.ErrCacheMiss):
		o.misses++
	default:
		o.errs++
		if o.firstErr == nil {
			o.firstErr = err
		}
	}
}

func (o *outcome) String() string {
	sorted := slices.Clone(o.latencies)
	slices.Sort(sorted)
	return fmt.Sprintf("%d hits, %d misses, %d errors (%v); latency p50 %s, p99 %s, max %s", o.hits, o.misses, o.errs,
		o.firstErr, percentile(sorted, 50), percentile(sorted, 99), percentile(sorted, 100))
}

// TestProxyServerDown stops one of four servers and gets every key through
// the proxy: the keys of the other servers are all served; those of the
// stopped server fail at once with an error (not a miss) until it is back,
// and are misses afterwards, as it restarts empty.
func TestProxyServerDown(t *testing.T) {
	servers := startServers(t, 4)
	tier := startProxy(t, addrs(servers))
	c := client(tier.addr, 4)
	setAll(t, c, keys)
	where := placement(t, addrs(servers), keys)

	const down = 2
	servers[down].p.Kill()
	began := time.Now()
	var alive, stopped outcome
	for i := range keys {
		start := time.Now()
		_, err := c.Get(key(i))
		if where[i] == down {
			stopped.record(err, time.Since(start))
		} else {
			alive.record(err, time.Since(start))
		}
	}
	took := time.Since(began)
	onStopped := float64(len(stopped.latencies)) / keys
	t.Logf("server %d of 4 stopped, %d gets through the proxy in %s:\n  keys of the other servers (%.1f%%): %s\n  keys of the stopped server (%.1f%%): %s",
		down, keys, took.Round(time.Millisecond), 100*(1-onStopped), &alive, 100*onStopped, &stopped)
	if alive.hits != len(alive.latencies) {
		t.Errorf("keys of the servers still running: %s; want every one served", &alive)
	}
	if stopped.hits != 0 || stopped.errs == 0 {
		t.Errorf("keys of the stopped server: %s; want errors", &stopped)
	}

	// Sets fail the same way.
	var sets outcome
	for i := range keys {
		if where[i] != down {
			continue
		}
		start := time.Now()
		sets.record(c.Set(&memcache.Item{Key: key(i), Value: value(i)}), time.Since(start))
	}
	t.Logf("  sets of the stopped server's keys: %s", &sets)
	if sets.hits != 0 {
		t.Errorf("sets of the stopped server's keys: %s; want errors", &sets)
	}

	// The server comes back on its address, empty: the proxy reconnects
	// within its retry time and its keys are misses.
	restarted := time.Now()
	servers[down] = start(t, "server-2-again", serverBinary(t), servers[down].args, port(t, servers[down].addr))
	var firstKey string
	for i := range keys {
		if where[i] == down {
			firstKey = key(i)
			break
		}
	}
	var getErr error
	err := wait.PollUntilContextTimeout(t.Context(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, getErr = c.Get(firstKey)
		return errors.Is(getErr, memcache.ErrCacheMiss), nil
	})
	if err != nil {
		t.Fatalf("10s after the server came back, a get of its key still gives %v", getErr)
	}
	t.Logf("  the server back on its address: its keys are misses %s after it was started again",
		time.Since(restarted).Round(time.Millisecond))
}

// TestProxyReload grows the ring from four servers to five by rewriting the
// routes file and sending SIGHUP, while clients keep working through the
// proxy: no request fails (a get may miss a key set just before the reload,
// which moved), the new server gets its share of the keys, and only the
// keys that move to it move.
func TestProxyReload(t *testing.T) {
	servers := startServers(t, 5)
	tier := startProxy(t, addrs(servers[:4]))
	c := client(tier.addr, 4)
	setAll(t, c, keys)
	if n := currItems(t, servers[4].addr); n != 0 {
		t.Fatalf("the server not yet listed holds %d items", n)
	}

	// A bounded load: four clients, each with its own connections, set and
	// get keys of their own until the reload is done and each has made 500
	// more requests.
	var reloaded atomic.Bool
	var requests, failures, misses atomic.Int64
	var failed sync.Map
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			lc := client(tier.addr, 1)
			after := 0
			for n := 0; after < 500; n++ {
				if reloaded.Load() {
					after++
				}
				k := fmt.Sprintf("load-%d-%d", w, n%500)
				err := lc.Set(&memcache.Item{Key: k, Value: []byte("v")})
				if err == nil {
					_, err = lc.Get(k)
				}
				requests.Add(2)
				switch {
				case errors.Is(err, memcache.ErrCacheMiss):
					// Set with the routes before the reload, read with
					// those after it: the key moved to the new server.
					misses.Add(1)
				case err != nil:
					failures.Add(1)
					failed.LoadOrStore(err.Error(), k)
				}
				if n > 1_000_000 {
					return
				}
			}
		})
	}
	// Let the load run before the reload.
	if err := wait.PollUntilContextTimeout(t.Context(), time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return requests.Load() >= 2000, nil
	}); err != nil {
		t.Fatalf("the clients sent %d requests before the reload, not 2000: %v", requests.Load(), err)
	}
	tier.write(t, addrs(servers))
	atSignal := requests.Load()
	took := tier.reload(t)
	during := requests.Load() - atSignal
	reloaded.Store(true)
	wg.Wait()
	t.Logf("reload 4→5 servers: done %s after SIGHUP; %d requests of the load around it (%d between SIGHUP and the reload's end), %d failed, %d gets missed the key just set",
		took.Round(time.Millisecond), requests.Load(), during, failures.Load(), misses.Load())
	failed.Range(func(err, k any) bool {
		t.Errorf("during the reload, a request for %s failed: %s", k, err)
		return true
	})

	// The keys whose server changed are misses now; each of them is on the
	// new server once set again, and no other key moved.
	var moved []int
	for i := range keys {
		_, err := c.Get(key(i))
		switch {
		case errors.Is(err, memcache.ErrCacheMiss):
			moved = append(moved, i)
		case err != nil:
			t.Fatalf("get %s after the reload: %v", key(i), err)
		}
	}
	for _, i := range moved {
		if err := c.Set(&memcache.Item{Key: key(i), Value: value(i)}); err != nil {
			t.Fatalf("set %s: %v", key(i), err)
		}
	}
	// A key that was a hit has stayed on its server, the only one that had it.
	movedKeys := make([]string, len(moved))
	for j, i := range moved {
		movedKeys[j] = key(i)
	}
	onNewServer := client(servers[4].addr, 1)
	for from := 0; from < len(movedKeys); from += 100 {
		batch := movedKeys[from:min(from+100, len(movedKeys))]
		items, err := onNewServer.GetMulti(batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range batch {
			if items[k] == nil {
				t.Errorf("%s moved, but not to the new server", k)
			}
		}
	}
	share := float64(len(moved)) / keys
	onNew := currItems(t, servers[4].addr)
	t.Logf("ring 4→5 through the proxy: %d of %d keys (%.1f%%) moved, all to the new server, which now holds %d items",
		len(moved), keys, 100*share, onNew)
	if share < 0.18 || share > 0.22 {
		t.Errorf("%.3f of the keys moved, want about 1/5", share)
	}
	if onNew == 0 {
		t.Error("the new server holds no keys")
	}
}

func port(t *testing.T, addr string) int {
	t.Helper()
	var p int
	if _, err := fmt.Sscanf(addr[len("127.0.0.1:"):], "%d", &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// relay forwards connections on a loopback port to a server until it is
// frozen: from then on it reads what the proxy sends and answers nothing, on
// the connections it holds and on new ones, as a server does whose pod hangs
// or whose network is cut. It stops when the test ends.
type relay struct {
	addr   string
	frozen atomic.Bool
}

func startRelay(t *testing.T, server string) *relay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{addr: l.Addr().String()}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	})
	conns.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", server)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			open = append(open, in, out)
			mu.Unlock()
			conns.Go(func() { r.copy(out, in) })
			conns.Go(func() { r.copy(in, out) })
		}
	})
	return r
}

// copy copies from src to dst while the relay is not frozen, and discards
// what src sends once it is.
func (r *relay) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !r.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestProxyServerHangs has one of four servers stop answering on the
// connections the proxy holds: the gets of its keys fail after the read
// timeout of the routes file, then at once while the proxy holds it down,
// and the keys of the other servers are served meanwhile.
func TestProxyServerHangs(t *testing.T) {
	servers := startServers(t, 4)
	const hung = 2
	r := startRelay(t, servers[hung].addr)
	listed := addrs(servers)
	listed[hung] = r.addr
	tier := startProxy(t, listed)
	c := client(tier.addr, 4)
	c.Timeout = 5 * time.Second
	setAll(t, c, keys)
	where := placement(t, addrs(servers), keys)

	var hungKeys, otherKeys []string
	for i := range keys {
		if where[i] == hung {
			hungKeys = append(hungKeys, key(i))
		} else {
			otherKeys = append(otherKeys, key(i))
		}
	}
	r.frozen.Store(true)
	var stop atomic.Bool
	var others outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		oc := client(tier.addr, 1)
		for i := 0; !stop.Load(); i++ {
			start := time.Now()
			_, err := oc.Get(otherKeys[i%len(otherKeys)])
			others.record(err, time.Since(start))
		}
	}()
	var stuck outcome
	timeline := make([]string, 0, 12)
	began := time.Now()
	for i := range 12 {
		start := time.Now()
		_, err := c.Get(hungKeys[i])
		took := time.Since(start)
		stuck.record(err, took)
		timeline = append(timeline, took.Round(time.Millisecond).String())
	}
	stop.Store(true)
	<-done
	t.Logf("server %d of 4 hangs, 12 gets of its keys one after the other in %s: %s\n  each: %v\n  meanwhile, gets of the other servers' keys: %s",
		hung, time.Since(began).Round(time.Millisecond), &stuck, timeline, &others)
	if stuck.hits != 0 || stuck.errs == 0 {
		t.Errorf("gets of the hung server's keys: %s; want errors", &stuck)
	}
	if worst := slices.Max(stuck.latencies); worst > 2500*time.Millisecond {
		t.Errorf("a get of the hung server's keys took %s, want about the read timeout, 1s, at most", worst)
	}
	if others.hits != len(others.latencies) {
		t.Errorf("gets of the other servers' keys while one hangs: %s; want every one served", &others)
	}
}

// TestProxyBadReload sends SIGHUP with a routes file that does not load:
// memcached 1.6.38 does not keep the routes it had, it exits. A routes file
// must therefore load before any proxy is told to reload it.
func TestProxyBadReload(t *testing.T) {
	servers := startServers(t, 2)
	tier := startProxy(t, addrs(servers))
	c := client(tier.addr, 1)
	setAll(t, c, 100)
	bad := "pools{ main = { backends = { \"no port\" } } }\nroutes{ default = route_direct{ child = \"main\" } }\n"
	if err := os.WriteFile(tier.routes, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(tier.p.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- tier.p.Err() }()
	select {
	case err := <-exited:
		out, _ := os.ReadFile(tier.log)
		t.Logf("a routes file that does not load, on SIGHUP: the proxy exited (%v): %s", err, strings.TrimSpace(string(out)))
		if err == nil || !strings.Contains(string(out), "invalid backend string") {
			t.Errorf("the proxy exited with %v, want a failure naming the bad backend", err)
		}
	case <-time.After(10 * time.Second):
		_, err := c.Get(key(0))
		t.Fatalf("the proxy still runs 10s after reloading a routes file that does not load (a get: %v); "+
			"this memcached keeps its routes, update docs/proxy.md", err)
	}
}
