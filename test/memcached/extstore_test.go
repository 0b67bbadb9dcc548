package memcached_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// memcachedStats returns memcached's general `stats`.
func memcachedStats(t *testing.T, addr string) map[string]string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprint(conn, "stats\r\n"); err != nil {
		t.Fatal(err)
	}
	stats := map[string]string{}
	scanner := bufio.NewScanner(conn)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "END" {
			return stats
		}
		if fields := strings.Fields(line); len(fields) == 3 && fields[0] == "STAT" {
			stats[fields[1]] = fields[2]
		}
	}
	t.Fatalf("stats ended without END: %v", scanner.Err())
	return nil
}

func statInt(t *testing.T, stats map[string]string, name string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(stats[name], 10, 64)
	if err != nil {
		t.Fatalf("stats %s = %q: %v", name, stats[name], err)
	}
	return n
}

// extstoreArgs returns the command line the operator renders for spec, with
// the directory of the extstore volume swapped for dir.
func extstoreArgs(t *testing.T, spec *cachev1alpha1.MemcachedSpec, dir string) []string {
	t.Helper()
	args := withDirs(memcached.Args(spec), map[string]string{memcached.ExtstoreDir: dir})
	if !strings.Contains(strings.Join(args, " "), "ext_path="+filepath.Join(dir, memcached.ExtstoreFile)+":") {
		t.Fatalf("the rendered arguments %q do not put the extstore file in %s", args, dir)
	}
	return args
}

// TestExtstoreHoldsMoreThanMemory starts memcached with the command line the
// operator renders for a spec with extstore, writes values of more than
// five times -m, reads every one back, and checks in `stats` that values
// were written to the file and read from it.
func TestExtstoreHoldsMoreThanMemory(t *testing.T) {
	binary := memcachedBinary(t)
	dir := readableDir(t)
	// memcached moves values to the file when less than freeMemoryPercent
	// of -m is free; at 50%, a client that waits while more than 40 MB
	// are still to be moved never outruns it.
	free := int32(50)
	spec := &cachev1alpha1.MemcachedSpec{Workload: cachev1alpha1.WorkloadStatefulSet, MemoryMB: 64,
		Extstore: &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "2Gi", FreeMemoryPercent: &free}}
	if err := memcached.CheckExtstore(spec); err != nil {
		t.Fatal(err)
	}
	s := startMemcached(t, binary, extstoreArgs(t, spec, dir))
	client := memcache.New(s.addr)
	client.Timeout = 5 * time.Second

	const (
		keys      = 4000
		valueSize = 100 * 1024 // 400 MB in all, 6.1 times -m 64
	)
	value := func(i int) []byte {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, valueSize)
		copy(v, strconv.Itoa(i))
		return v
	}
	// A client that writes as fast as loopback allows outruns the thread
	// that moves values to the file, and memcached evicts what it has not
	// moved yet: each value waits, polling, until at most backlog values
	// are still to be written.
	const backlog = 400 // 40 MB: the writer starts at 32, memcached evicts at 64
	waitForFlush := func(set int) {
		deadline := time.Now().Add(30 * time.Second)
		for statInt(t, memcachedStats(t, s.addr), "extstore_objects_written") < int64(set-backlog) {
			if time.Now().After(deadline) {
				t.Fatalf("memcached wrote no more values to its file for 30s: %v", memcachedStats(t, s.addr))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	start := time.Now()
	retries := 0
	for i := range keys {
		waitForFlush(i)
		item := &memcache.Item{Key: "key-" + strconv.Itoa(i), Value: value(i)}
		// While the write buffers are full, memcached answers out of
		// memory: the set is tried again until it succeeds.
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := client.Set(item)
			if err == nil {
				break
			}
			if !strings.Contains(err.Error(), "out of memory") || time.Now().After(deadline) {
				t.Fatalf("Set %s: %v\n%s", item.Key, err, s.output.String())
			}
			retries++
			time.Sleep(10 * time.Millisecond)
		}
	}
	wrote := time.Since(start)

	start = time.Now()
	for i := range keys {
		key := "key-" + strconv.Itoa(i)
		item, err := client.Get(key)
		if err != nil {
			t.Fatalf("Get %s: %v", key, err)
		}
		if !bytes.Equal(item.Value, value(i)) {
			t.Fatalf("Get %s returned %d bytes that differ from the %d set", key, len(item.Value), valueSize)
		}
	}
	read := time.Since(start)

	stats := memcachedStats(t, s.addr)
	written, fromFile := statInt(t, stats, "extstore_objects_written"), statInt(t, stats, "get_extstore")
	t.Logf("memcached %s -m 64, file %d MiB: %d values of %d KiB (%d MB, %.1f x -m) set in %v (%d retries), all %d read back in %v",
		stats["version"], memcached.ExtstoreFileMB(spec), keys, valueSize/1024, keys*valueSize/1000000,
		float64(keys*valueSize)/(64<<20), wrote.Round(time.Millisecond), retries, keys, read.Round(time.Millisecond))
	t.Logf("stats: extstore_objects_written=%d extstore_bytes_written=%s get_extstore=%d extstore_bytes_read=%s "+
		"extstore_objects_used=%s extstore_bytes_used=%s extstore_page_allocs=%s evictions=%s curr_items=%s bytes=%s",
		written, stats["extstore_bytes_written"], fromFile, stats["extstore_bytes_read"], stats["extstore_objects_used"],
		stats["extstore_bytes_used"], stats["extstore_page_allocs"], stats["evictions"], stats["curr_items"], stats["bytes"])
	if written == 0 || fromFile == 0 || statInt(t, stats, "extstore_bytes_read") == 0 {
		t.Errorf("memcached neither wrote values to its file nor read them from it: %v", stats)
	}
	if got := statInt(t, stats, "get_hits"); got != keys {
		t.Errorf("get_hits = %d, want %d", got, keys)
	}
	if info, err := os.Stat(filepath.Join(dir, memcached.ExtstoreFile)); err != nil || info.Size() == 0 {
		t.Errorf("no extstore file in the volume's directory: %v", err)
	} else {
		t.Logf("the extstore file holds %d MB", info.Size()/1000000)
	}
}

// startsOrRefuses runs memcached with args made local and reports whether it
// starts, i.e. accepts connections, or exits, with its output.
func startsOrRefuses(t *testing.T, binary string, args []string) (bool, string) {
	t.Helper()
	args, port := localArgs(t, args)
	cmd := exec.Command(binary, args...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
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
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return true, ""
		}
		select {
		case <-exited:
			return false, output.String()
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("memcached %q neither started nor exited", args)
	return false, ""
}

// memcachedVersion returns the version of binary as major, minor, patch.
func memcachedVersion(t *testing.T, binary string) [3]int {
	t.Helper()
	out, err := exec.Command(binary, "-V").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v [3]int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "memcached %d.%d.%d", &v[0], &v[1], &v[2]); err != nil {
		t.Fatalf("memcached -V: %q: %v", out, err)
	}
	return v
}

// TestExtstoreSettingsAgainstRealMemcached runs memcached with the command
// line the operator renders for specs with extstore at the edges of what
// memcached accepts, and checks that memcached starts with those the
// operator's check, which admission agrees with, accepts, and refuses to
// start with those it refuses for memcached's sake.
func TestExtstoreSettingsAgainstRealMemcached(t *testing.T) {
	binary := memcachedBinary(t)
	version := memcachedVersion(t, binary)
	stateful := func(mutate func(*cachev1alpha1.MemcachedSpec)) *cachev1alpha1.MemcachedSpec {
		s := &cachev1alpha1.MemcachedSpec{Workload: cachev1alpha1.WorkloadStatefulSet,
			Extstore: &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "1Gi"}}
		mutate(s)
		return s
	}
	tests := []struct {
		name string
		spec *cachev1alpha1.MemcachedSpec
		// since is the first memcached version that refuses it, when
		// older ones start anyway.
		since [3]int
	}{
		{name: "defaults", spec: stateful(func(*cachev1alpha1.MemcachedSpec) {})},
		{name: "Loki's -I 2m", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) { s.MemoryMB = 128; s.MaxItemSizeKB = 2048 })},
		{name: "items as large as 2 MB write buffers", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) {
			s.MemoryMB, s.MaxItemSizeKB, s.Extstore.WriteBufferMB = 128, 2048, 2
		})},
		{name: "items larger than 2 MB write buffers", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) {
			s.MemoryMB, s.MaxItemSizeKB, s.Extstore.WriteBufferMB = 128, 4096, 2
		})},
		{name: "64 MB write buffers", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.WriteBufferMB = 64 })},
		{name: "write buffers that do not divide a page", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.WriteBufferMB = 6 })},
		{name: "write buffers larger than a page", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.WriteBufferMB = 128 })},
		{name: "a file of one page", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "72Mi" })},
		{name: "a file of no page", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "71Mi" }), since: [3]int{1, 6, 21}},
		{name: "a file of 65534 pages", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "4551Gi" })},
		{name: "a file of 65535 pages", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "4552Gi" })},
		{name: "tuned", spec: stateful(func(s *cachev1alpha1.MemcachedSpec) {
			age, rate, free := int32(3600), int32(2000), int32(1)
			s.Extstore.IOThreads, s.Extstore.ItemSizeBytes, s.Extstore.MaxSleepMicroseconds = 1, 64, 1000000
			s.Extstore.ItemAgeSeconds, s.Extstore.RecacheRate, s.Extstore.FreeMemoryPercent = &age, &rate, &free
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr := memcached.CheckExtstore(tt.spec)
			// A file of 4 TiB is only reserved, never written: memcached
			// empties its file and writes pages as it fills them.
			started, output := startsOrRefuses(t, binary, extstoreArgs(t, tt.spec, readableDir(t)))
			switch {
			case started && checkErr != nil && tt.since != [3]int{} && versionBefore(version, tt.since):
				t.Logf("memcached %v starts with it, as before %v, which refuses it; the operator refuses it: %v", version, tt.since, checkErr)
			case started && checkErr != nil:
				t.Errorf("memcached starts with it, but the operator refuses it: %v", checkErr)
			case !started && checkErr == nil:
				t.Errorf("the operator accepts it, but memcached refuses it: %s", output)
			case !started:
				t.Logf("memcached refuses it: %s; so does the operator: %v", strings.TrimSpace(output), checkErr)
			}
		})
	}
}

func versionBefore(v, w [3]int) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}
