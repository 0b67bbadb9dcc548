package memcached

import (
	"strings"
	"testing"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func TestCheckExtraArgs(t *testing.T) {
	tests := []struct {
		args    []string
		auth    bool
		wantErr string // "" when accepted
	}{
		{args: nil},
		{args: []string{"-R", "40"}},
		{args: []string{"-o", "modern"}},
		{args: []string{"-o", "lru_crawler,hash_algorithm=murmur3,slab_automove=2", "--disable-cas", "-M"}},
		{args: []string{"--max-reqs-per-event=20", "--slab-growth-factor=1.25", "-n", "96", "-b", "2048"}},
		{args: []string{"-o", "slab_sizes=96-192-384-768"}},
		{args: []string{"-D", ":", "-F", "-X", "-W"}},
		{args: []string{"-B", "ascii"}, auth: true},

		// What another field sets.
		{args: []string{"-m", "128"}, wantErr: "spec.memoryMB"},
		{args: []string{"-c", "10"}, wantErr: "spec.maxConnections"},
		{args: []string{"-t", "2"}, wantErr: "spec.threads"},
		{args: []string{"-I", "2m"}, wantErr: "spec.maxItemSizeKB"},
		{args: []string{"-v"}, wantErr: "spec.verbosity"},
		{args: []string{"--verbose"}, wantErr: "spec.verbosity"},
		{args: []string{"-e", "/tmp/f"}, wantErr: "spec.warmRestart"},
		{args: []string{"-Y", "/tmp/f"}, wantErr: "spec.auth"},
		{args: []string{"-Z"}, wantErr: "spec.tls"},
		{args: []string{"--memory-limit=1"}, wantErr: "spec.memoryMB"},

		// What undoes a guarantee.
		{args: []string{"-p", "1234"}, wantErr: "11211"},
		{args: []string{"--port=1234"}, wantErr: "11211"},
		{args: []string{"-U", "11211"}, wantErr: "UDP"},
		{args: []string{"-l", "0.0.0.0:12345"}, wantErr: "listens"},
		{args: []string{"-l", "notls:127.0.0.1:1"}, wantErr: "listens"},
		{args: []string{"-s", "/tmp/sock"}, wantErr: "unix socket"},
		{args: []string{"-A"}, wantErr: "shut memcached down"},
		{args: []string{"-d"}, wantErr: "foreground"},
		{args: []string{"-u", "root"}, wantErr: "user"},
		{args: []string{"-V"}, wantErr: "exits"},
		{args: []string{"-h"}, wantErr: "exits"},
		{args: []string{"-L"}, wantErr: "huge pages"},
		{args: []string{"-o", "ssl_verify_mode=0"}, wantErr: "TLS"},
		{args: []string{"-o", "modern,ssl_verify_mode=0"}, wantErr: "TLS"},
		{args: []string{"--extended=ssl_verify_mode=0"}, wantErr: "TLS"},
		{args: []string{"-o", "ext_path=/tmp/x:64m"}, wantErr: "extstore"},
		{args: []string{"-o", "drop_privileges"}, wantErr: "seccomp"},
		{args: []string{"-B", "binary"}, auth: true, wantErr: "ascii"},

		// What getopt_long would read differently.
		{args: []string{"--por=1234"}, wantErr: "written in full"},
		{args: []string{"--udp=1"}, wantErr: "written in full"},
		{args: []string{"--memory-l=1"}, wantErr: "written in full"},
		{args: []string{"--ex=ssl_verify_mode=0"}, wantErr: "written in full"},
		{args: []string{"--dae"}, wantErr: "written in full"},
		{args: []string{"-vU0"}, wantErr: "argument of its own"},
		{args: []string{"-U0"}, wantErr: "argument of its own"},
		{args: []string{"-port"}, wantErr: "argument of its own"},
		{args: []string{"-R", "-p"}, wantErr: "may not start with"},
		{args: []string{"-R"}, wantErr: "needs a value"},
		{args: []string{"--max-reqs-per-event", "20"}, wantErr: "after \"=\""},
		{args: []string{"foo"}, wantErr: "not an option"},
		{args: []string{"--", "-p", "1"}, wantErr: "written in full"},
		{args: []string{"-"}, wantErr: "not an option"},
		{args: []string{"-R", "20", "-R", "30"}, wantErr: "twice"},
		{args: []string{"-o", "Modern"}, wantErr: "not an option that may be set"},
		{args: []string{"-o", "modern,,lru_crawler"}, wantErr: "not an option that may be set"},
		{args: []string{"-o", "slab_sizes"}, wantErr: "needs a value"},
		{args: []string{"-o", "lru_crawler=1"}, wantErr: "takes no value"},
		{args: []string{"-o", "hot_lru_pct=60,warm_lru_pct=30"}, wantErr: "80"},
		{args: []string{"-o", "slab_sizes=96-100"}, wantErr: "more than 8"},
		{args: []string{"-f", "1.0"}, wantErr: "above 1"},
		{args: []string{"-f", "1e3"}, wantErr: "above 1"},
		{args: []string{"-R", "0"}, wantErr: "from 1"},
		{args: []string{"-D", "::"}, wantErr: "one character"},
		{args: []string{"-N", "2"}, wantErr: "crash"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			spec := &cachev1alpha1.MemcachedSpec{ExtraArgs: tt.args}
			if tt.auth {
				spec.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"}
			}
			err := CheckExtraArgs(spec)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("accepted, want an error saying %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("error %q, want one saying %q", err, tt.wantErr)
			case err != nil && !strings.HasPrefix(err.Error(), "spec.extraArgs["):
				t.Errorf("error %q does not name the argument", err)
			}
		})
	}
}
