package memcached

import (
	"slices"
	"strings"
	"testing"
)

func TestProxyArgs(t *testing.T) {
	tests := []struct {
		name string
		opts ProxyOptions
		want []string
	}{
		{
			name: "defaults",
			want: []string{"-p", "11211", "-U", "0", "-m", "2", "-c", "4096", "-t", "4",
				"-o", "proxy_config=routelib,proxy_arg=/etc/memcached-proxy/routes.lua"},
		},
		{
			name: "tuned",
			opts: ProxyOptions{MaxConnections: 10000, Threads: 2},
			want: []string{"-p", "11211", "-U", "0", "-m", "2", "-c", "10000", "-t", "2",
				"-o", "proxy_config=routelib,proxy_arg=/etc/memcached-proxy/routes.lua"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ProxyArgs(tt.opts); !slices.Equal(got, tt.want) {
				t.Errorf("ProxyArgs() = %q, want %q", got, tt.want)
			}
		})
	}
}

const proxySettingsLua = `-- memcached proxy routes (route library), rendered by memcached-operator from the server list.
settings{
    backend_connect_timeout = 1,
    backend_read_timeout = 1,
    backend_retry_waittime = 1,
    backend_failure_limit = 3,
}
`

func TestProxyRoutes(t *testing.T) {
	tests := []struct {
		name    string
		servers []string
		want    string
		wantErr string
	}{
		{
			name: "StatefulSet names, in list order",
			servers: []string{"cache-0.cache-headless.ns.svc:11211", "cache-1.cache-headless.ns.svc:11211",
				"cache-10.cache-headless.ns.svc:11211", "cache-2.cache-headless.ns.svc:11211"},
			want: proxySettingsLua + `pools{
    main = {
        backends = {
            { label = "cache-0.cache-headless.ns.svc:11211", host = "cache-0.cache-headless.ns.svc", port = "11211" },
            { label = "cache-1.cache-headless.ns.svc:11211", host = "cache-1.cache-headless.ns.svc", port = "11211" },
            { label = "cache-10.cache-headless.ns.svc:11211", host = "cache-10.cache-headless.ns.svc", port = "11211" },
            { label = "cache-2.cache-headless.ns.svc:11211", host = "cache-2.cache-headless.ns.svc", port = "11211" },
        },
    },
}
routes{
    default = route_direct{ child = "main" },
}
`,
		},
		{
			name:    "IPv4 and IPv6 addresses, port made canonical",
			servers: []string{"10.244.0.3:11211", "[fd00::1]:011211"},
			want: proxySettingsLua + `pools{
    main = {
        backends = {
            { label = "10.244.0.3:11211", host = "10.244.0.3", port = "11211" },
            { label = "[fd00::1]:11211", host = "fd00::1", port = "11211" },
        },
    },
}
routes{
    default = route_direct{ child = "main" },
}
`,
		},
		{
			name: "no servers",
			want: proxySettingsLua + `-- No servers: every get misses, nothing is stored.
routes{
    default = route_null{},
}
`,
		},
		{name: "no port", servers: []string{"10.0.0.1"}, wantErr: `server 0 "10.0.0.1" is not host:port`},
		{name: "empty host", servers: []string{":11211"}, wantErr: "is not a DNS name or an IP address"},
		{name: "port zero", servers: []string{"a:0"}, wantErr: "not a number from 1 to 65535"},
		{name: "port too large", servers: []string{"a:65536"}, wantErr: "not a number from 1 to 65535"},
		{name: "named port", servers: []string{"a:memcached"}, wantErr: "not a number from 1 to 65535"},
		{name: "quote in host", servers: []string{`a",x="b:11211`}, wantErr: "is not a DNS name or an IP address"},
		{name: "space in host", servers: []string{"a b:11211"}, wantErr: "is not a DNS name or an IP address"},
		{name: "backslash in host", servers: []string{`a\n:11211`}, wantErr: "is not a DNS name or an IP address"},
		{name: "colons but not IPv6", servers: []string{"[a:b:c]:11211"}, wantErr: "is not an IPv6 address"},
		{name: "host too long", servers: []string{strings.Repeat("a", 254) + ":11211"},
			wantErr: "is not a DNS name or an IP address"},
		{name: "listed twice", servers: []string{"a:11211", "b:11211", "a:011211"}, wantErr: `server 2 "a:011211" is listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ProxyRoutes(tt.servers)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("ProxyRoutes() =\n%s\nwant\n%s", got, tt.want)
			}
			// The same list renders the same bytes.
			again, _ := ProxyRoutes(slices.Clone(tt.servers))
			if string(again) != string(got) {
				t.Errorf("a second rendering differs:\n%s", again)
			}
		})
	}
}

func TestProxyRoutesWith(t *testing.T) {
	got, err := ProxyRoutesWith([]string{"a:1"}, ProxySettings{ConnectTimeoutSeconds: 0.25, ReadTimeoutSeconds: 0.5,
		RetrySeconds: 2, FailureLimit: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"backend_connect_timeout = 0.25,", "backend_read_timeout = 0.5,",
		"backend_retry_waittime = 2,", "backend_failure_limit = 5,"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the routes file has no %q:\n%s", want, got)
		}
	}
	for _, bad := range []ProxySettings{{}, {ConnectTimeoutSeconds: 1, ReadTimeoutSeconds: 1, RetrySeconds: 1},
		{ConnectTimeoutSeconds: -1, ReadTimeoutSeconds: 1, RetrySeconds: 1, FailureLimit: 1}} {
		if _, err := ProxyRoutesWith([]string{"a:1"}, bad); err == nil {
			t.Errorf("ProxyRoutesWith(%+v) accepted", bad)
		}
	}
}
