package proxy

import (
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkGet measures gets of 100-byte values that are all hits, from 8
// concurrent clients on loopback: straight to one server, through the proxy
// to that one server, and through the proxy to four servers. It reports the
// throughput and the p50 and p99 latency a client sees. Bound it with
// -benchtime, e.g.:
//
//	go -C test test ./proxy -run '^$' -bench Get -benchtime 100000x
func BenchmarkGet(b *testing.B) {
	servers := startServers(b, 4)
	one := startProxy(b, addrs(servers[:1]))
	four := startProxy(b, addrs(servers))
	const keyspace = 1000
	setAll(b, client(four.addr, 1), keyspace)
	setAll(b, client(servers[0].addr, 1), keyspace)

	for _, target := range []struct{ name, addr string }{
		{"direct", servers[0].addr},
		{"proxy-1-server", one.addr},
		{"proxy-4-servers", four.addr},
	} {
		b.Run(target.name, func(b *testing.B) {
			const clients = 8
			c := client(target.addr, clients)
			var mu sync.Mutex
			var latencies []time.Duration
			var failed error
			b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				own := make([]time.Duration, 0, 1024)
				i := 0
				for pb.Next() {
					start := time.Now()
					_, err := c.Get(key(i % keyspace))
					own = append(own, time.Since(start))
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
					}
					i += 7
				}
				mu.Lock()
				latencies = append(latencies, own...)
				mu.Unlock()
			})
			b.StopTimer()
			if failed != nil {
				b.Fatalf("get: %v", failed)
			}
			slices.Sort(latencies)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
			b.ReportMetric(float64(percentile(latencies, 50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(percentile(latencies, 99).Microseconds()), "p99-µs")
		})
	}
}
