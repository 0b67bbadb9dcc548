package memcached_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// TestRealMemcached runs the command line Args renders with a real memcached,
// then stores and reads a value with a Go client and checks, with `stats
// settings`, that every setting took effect.
func TestRealMemcached(t *testing.T) {
	binary := memcachedBinary(t)
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
			addr := startMemcached(t, binary, memcached.Args(&tt.spec)).addr

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

// guarantees are the settings the operator owns, as `stats settings` shows
// them for the defaults and the given port.
func guarantees(port string) map[string]string {
	return map[string]string{"tcpport": port, "udpport": "0", "maxbytes": "67108864", "maxconns": "1024",
		"num_threads": "4", "item_size_max": "1048576", "verbosity": "0", "domain_socket": "NULL", "auth_enabled_ascii": "no"}
}

// TestExtraArgsAgainstRealMemcached runs memcached with extra arguments the
// check accepts, and finds every setting the operator owns as it was; and
// with arguments it refuses, and finds that memcached indeed gives up a
// guarantee for them: the check refuses what it must.
func TestExtraArgsAgainstRealMemcached(t *testing.T) {
	binary := memcachedBinary(t)
	accepted := [][]string{
		{"-R", "40", "-C", "-M"},
		{"-o", "modern,lru_crawler,hash_algorithm=murmur3,slab_automove=2,hashpower=16"},
		{"--max-reqs-per-event=20", "--slab-growth-factor=1.5", "-n", "96", "-b", "2048", "-F", "-X", "-W"},
		{"-o", "slab_sizes=96-192-384-768-1536", "-D", ":"},
		{"-B", "ascii", "-o", "hot_lru_pct=30,warm_lru_pct=40,idle_timeout=600"},
	}
	for _, extra := range accepted {
		t.Run("accepted "+strings.Join(extra, " "), func(t *testing.T) {
			spec := &cachev1alpha1.MemcachedSpec{ExtraArgs: extra}
			if err := memcached.CheckExtraArgs(spec); err != nil {
				t.Fatalf("refused: %v", err)
			}
			s := startMemcached(t, binary, memcached.Args(spec))
			_, port, _ := strings.Cut(s.addr, ":")
			settings := statsSettings(t, s.addr)
			for key, want := range guarantees(port) {
				if settings[key] != want {
					t.Errorf("stats settings %s = %q, want %q", key, settings[key], want)
				}
			}
		})
	}

	// Each of these changes a setting memcached reports, which the check
	// must therefore refuse.
	refused := []struct {
		extra   []string
		setting string
	}{
		{[]string{"--memory-l=32"}, "maxbytes"},
		{[]string{"-t", "8"}, "num_threads"},
		{[]string{"--t=8"}, "num_threads"},
		{[]string{"-vv"}, "verbosity"},
		{[]string{"-c", "100"}, "maxconns"},
		{[]string{"-I", "2m"}, "item_size_max"},
		{[]string{"-R", "20", "--conn-l=50"}, "maxconns"},
	}
	for _, tt := range refused {
		t.Run("refused "+strings.Join(tt.extra, " "), func(t *testing.T) {
			spec := &cachev1alpha1.MemcachedSpec{ExtraArgs: tt.extra}
			if err := memcached.CheckExtraArgs(spec); err == nil {
				t.Fatalf("accepted")
			}
			if tt.setting == "" {
				return
			}
			s := startMemcached(t, binary, memcached.Args(spec))
			_, port, _ := strings.Cut(s.addr, ":")
			if got, want := statsSettings(t, s.addr)[tt.setting], guarantees(port)[tt.setting]; got == want {
				t.Errorf("memcached still has %s = %s: the check refuses an argument that changes nothing", tt.setting, got)
			}
		})
	}

	// A prefix of --udp-port opens UDP, which the operator keeps closed.
	t.Run("refused --udp=PORT opens UDP", func(t *testing.T) {
		port := strconv.Itoa(freePort(t))
		spec := &cachev1alpha1.MemcachedSpec{ExtraArgs: []string{"--udp=" + port}}
		if err := memcached.CheckExtraArgs(spec); err == nil {
			t.Fatal("accepted")
		}
		s := startMemcached(t, binary, memcached.Args(spec))
		if got := statsSettings(t, s.addr)["udpport"]; got != port {
			t.Errorf("udpport = %s: memcached did not read --udp as --udp-port", got)
		}
	})
}
