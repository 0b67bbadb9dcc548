package memcached

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// FuzzCheckExtraArgs checks that whatever spec.extraArgs CheckExtraArgs
// accepts, memcached reads the command line the operator renders as the
// operator means it: its own options as rendered, then only options from the
// allow-list, with nothing left over and nothing memcached would refuse.
func FuzzCheckExtraArgs(f *testing.F) {
	for _, seed := range []string{
		"-R\n20", "--max-reqs-per-event=20", "-o\nhashpower=20,lru_crawler", "-B\nascii", "-M\n-C\n-F",
		"--por=1", "-vU0", "-pU0", "-o\nssl_verify_mode=0", "--ex=ssl_verify_mode=0", "-R\n-p", "-l\n127.0.0.1",
		"-R", "--protocol\nbinary", "-D\n:", "-f\n1.25", "-o\nslab_sizes=64-128-256", "--\n-p\n1", "-o\n",
		"-o\nhot_lru_pct=40,warm_lru_pct=40", "-o\nslab_automove", "-o\nslab_automove=1", "--listen\n0",
	} {
		f.Add(seed, uint8(0))
		f.Add(seed, uint8(0b111111))
	}
	f.Fuzz(func(t *testing.T, extraArgs string, features uint8) {
		spec := fuzzSpec(features)
		operators := Args(spec)
		spec.ExtraArgs = strings.Split(extraArgs, "\n")
		if err := CheckExtraArgs(spec); err != nil {
			if err.Error() == "" {
				t.Fatalf("%q is refused without a message", spec.ExtraArgs)
			}
			return
		}

		parsed, err := parseMemcachedArgs(Args(spec))
		if err != nil {
			t.Fatalf("extraArgs %q are accepted, but memcached refuses its command line: %v", spec.ExtraArgs, err)
		}
		if len(parsed.ignored) > 0 {
			t.Fatalf("extraArgs %q are accepted, but memcached ignores %q", spec.ExtraArgs, parsed.ignored)
		}
		own, err := parseMemcachedArgs(operators)
		if err != nil {
			t.Fatalf("memcached refuses the operator's own options %q: %v", operators, err)
		}
		if !slices.Equal(parsed.options[:len(own.options)], own.options) {
			t.Fatalf("with extraArgs %q, memcached reads the operator's options as %v, want %v",
				spec.ExtraArgs, parsed.options[:len(own.options)], own.options)
		}
		for _, o := range parsed.options[len(own.options):] {
			if !slices.ContainsFunc(allowedOptions, func(a option) bool { return a.short == o.short }) {
				t.Errorf("extraArgs %q set -%c, which is not on the allow-list", spec.ExtraArgs, o.short)
			}
		}
		checkGuarantees(t, spec, parsed)
	})
}

// fuzzSpec returns a spec with the features a fuzzer's bits turn on.
func fuzzSpec(features uint8) *cachev1alpha1.MemcachedSpec {
	spec := &cachev1alpha1.MemcachedSpec{Verbosity: int32(features & 0b11 % 3)}
	if features&0b100 != 0 {
		spec.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"}
	}
	if features&0b1000 != 0 {
		spec.TLS = &cachev1alpha1.TLSSpec{SecretName: "tls"}
		if features&0b10000 != 0 {
			spec.TLS.ClientCASecretName = "client-ca"
		}
	}
	if features&0b100000 != 0 {
		spec.Workload = cachev1alpha1.WorkloadStatefulSet
		spec.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
	}
	if features&0b1000000 != 0 {
		spec.MaxItemSizeKB = 2048
	}
	return spec
}

// checkGuarantees checks what memcached reads against what the operator
// guarantees: the port, UDP off, TLS and authentication as the spec says,
// the settings of the spec's fields, and no option that changes where and
// how memcached runs.
func checkGuarantees(t *testing.T, spec *cachev1alpha1.MemcachedSpec, p parsedCommandLine) {
	t.Helper()
	want := map[byte][]string{
		'p': {strconv.Itoa(Port)},
		'U': {"0"},
		'm': {strconv.Itoa(int(spec.GetMemoryMB()))},
		'c': {strconv.Itoa(int(spec.GetMaxConnections()))},
		't': {strconv.Itoa(int(spec.GetThreads()))},
		'I': {strconv.Itoa(int(spec.GetMaxItemSizeKB())) + "k"},
		'v': slices.Repeat([]string{""}, int(spec.Verbosity)),
		'Y': nil, 'e': nil, 'Z': nil,
		// Neither the extra arguments nor the operator may set these.
		'a': nil, 's': nil, 'l': nil, 'd': nil, 'u': nil, 'P': nil, 'A': nil, 'k': nil,
		'r': nil, 'h': nil, 'i': nil, 'V': nil, 'S': nil, 'N': nil, 'L': nil,
	}
	if spec.Auth != nil {
		want['Y'] = []string{AuthDir + "/" + AuthFileKey}
	}
	if spec.WarmRestartEnabled() {
		want['e'] = []string{MemoryFileDir + "/" + MemoryFile}
	}
	if spec.TLS != nil {
		want['Z'] = []string{""}
	}
	for c, values := range want {
		if got := p.values(c); !slices.Equal(got, values) {
			t.Errorf("with extraArgs %q, memcached reads -%c %q, want %q", spec.ExtraArgs, c, got, values)
		}
	}
	if spec.Auth != nil {
		for _, protocol := range p.values('B') {
			if protocol != "ascii" {
				t.Errorf("with auth, extraArgs %q set the protocol %q, which makes memcached exit", spec.ExtraArgs, protocol)
			}
		}
	}

	var tls []string
	for _, key := range p.subOptionKeys() {
		switch {
		case strings.HasPrefix(key, "ssl_"):
			tls = append(tls, key)
		case strings.HasPrefix(key, "proxy_"), strings.HasPrefix(key, "ext_"), key == "drop_privileges",
			key == "tail_repair_time", key == "sock_cookie_id", key == "slab_chunk_max", key == "worker_logbuf_size":
			t.Errorf("extraArgs %q set -o %s", spec.ExtraArgs, key)
		default:
			if _, ok := subOptions[key]; !ok {
				t.Errorf("extraArgs %q set -o %q, which memcached does not have", spec.ExtraArgs, key)
			}
		}
	}
	var wantTLS []string
	if spec.TLS != nil {
		wantTLS = []string{"ssl_chain_cert", "ssl_key"}
		if spec.TLS.ClientCASecretName != "" {
			wantTLS = append(wantTLS, "ssl_ca_cert", "ssl_verify_mode")
		}
	}
	if !slices.Equal(tls, wantTLS) {
		t.Errorf("with extraArgs %q, memcached reads the TLS options %q, want %q", spec.ExtraArgs, tls, wantTLS)
	}
}
