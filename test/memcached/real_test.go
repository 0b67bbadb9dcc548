package memcached_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// TestRealMemcached runs the command line Args renders with a real memcached
// binary (Debian's package; MEMCACHED_BINARY overrides the one on PATH), then
// stores and reads a value with a Go client and checks, with `stats settings`,
// that every setting took effect.
func TestRealMemcached(t *testing.T) {
	binary := os.Getenv("MEMCACHED_BINARY")
	if binary == "" {
		var err error
		if binary, err = exec.LookPath("memcached"); err != nil {
			t.Fatal("memcached is not installed: install Debian's memcached package (apt-get install memcached), as .ci/run does")
		}
	}

	tests := []struct {
		name string
		spec cachev1alpha1.MemcachedSpec
		want map[string]string
	}{
		{
			name: "defaults",
			spec: cachev1alpha1.MemcachedSpec{},
			want: map[string]string{"maxbytes": "67108864", "maxconns": "1024", "num_threads": "4",
				"item_size_max": "1048576", "udpport": "0"},
		},
		{
			name: "tuned, verbose, with extra arguments",
			spec: cachev1alpha1.MemcachedSpec{MemoryMB: 128, MaxConnections: 256, Threads: 2, MaxItemSizeKB: 2048,
				Verbosity: 1, ExtraArgs: []string{"-o", "modern", "-R", "40"}},
			want: map[string]string{"maxbytes": "134217728", "maxconns": "256", "num_threads": "2",
				"item_size_max": "2097152", "udpport": "0", "reqs_per_event": "40"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startMemcached(t, binary, memcached.Args(&tt.spec))

			client := memcache.New(addr)
			value := []byte(strings.Repeat("v", 1000))
			if err := client.Set(&memcache.Item{Key: "greeting", Value: value}); err != nil {
				t.Fatalf("Set: %v", err)
			}
			item, err := client.Get("greeting")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if string(item.Value) != string(value) {
				t.Errorf("Get returned %d bytes, want the %d set", len(item.Value), len(value))
			}

			settings := statsSettings(t, addr)
			for key, want := range tt.want {
				if settings[key] != want {
					t.Errorf("stats settings %s = %q, want %q", key, settings[key], want)
				}
			}
		})
	}
}

// startMemcached runs memcached with args, its port swapped for a free
// loopback one, and returns its address once it accepts connections.
func startMemcached(t *testing.T, binary string, args []string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	args = slices.Clone(args)
	i := slices.Index(args, "-p")
	if i < 0 || args[i+1] != strconv.Itoa(memcached.Port) {
		t.Fatalf("the rendered arguments %q do not set -p %d", args, memcached.Port)
	}
	args[i+1] = strconv.Itoa(port)
	args = append(args, "-l", "127.0.0.1")
	if os.Geteuid() == 0 {
		// memcached refuses to run as root; in its container it runs as uid 11211.
		args = append(args, "-u", "nobody")
	}

	cmd := exec.Command(binary, args...)
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("Failed to start memcached: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("memcached %q exited: %v\n%s", args, waitErr, output.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached %q did not accept connections on %s: %v\n%s", args, addr, err, output.String())
		}
	}
}

// statsSettings returns memcached's `stats settings`.
func statsSettings(t *testing.T, addr string) map[string]string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprint(conn, "stats settings\r\n"); err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	scanner := bufio.NewScanner(conn)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "END" {
			return settings
		}
		if fields := strings.Fields(line); len(fields) == 3 && fields[0] == "STAT" {
			settings[fields[1]] = fields[2]
		}
	}
	t.Fatalf("stats settings ended without END: %v", scanner.Err())
	return nil
}
