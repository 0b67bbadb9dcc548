package memcached

import (
	"bytes"
	"fmt"
	"net"
	"path"
	"regexp"
	"strconv"
)

// The proxy tier: memcached in proxy mode (1.6.38 or later, built with the
// proxy, as the official image is) in front of the servers, configured with
// the route library built into memcached (proxy_config=routelib) and a routes
// file that ProxyRoutes renders from the server list.

// Where the proxy container finds its routes file.
const (
	// ProxyConfigDir holds ProxyRoutesKey, the routes file.
	ProxyConfigDir = "/etc/memcached-proxy"
	ProxyRoutesKey = "routes.lua"
)

// The proxy's defaults. It stores nothing, so it gets the least item memory
// memcached starts with: twice the largest item (-I, 1m by default), since
// memcached refuses a largest item above half its memory. Items are
// allocated only when stored, so this is a bound, not a reservation; what
// the proxy uses is per connection and per request buffers, outside -m.
// The values it passes on are not bound by -I: each server applies its own.
const (
	ProxyMemoryMB              = 2
	DefaultProxyMaxConnections = 4096
	DefaultProxyThreads        = 4
)

// ProxyOptions are the proxy's settings; the zero value takes the defaults.
type ProxyOptions struct {
	// MaxConnections is how many client connections the proxy accepts (-c).
	MaxConnections int32
	// Threads is how many worker threads it runs (-t). Each keeps its own
	// connection to each server.
	Threads int32
}

// ProxyArgs returns the proxy's memcached command-line arguments: port 11211,
// UDP off, the least item memory, the connection and thread counts of opts,
// and the built-in route library reading the routes file in ProxyConfigDir.
// memcached reloads the routes file when it gets SIGHUP, serving throughout;
// if the file does not load, it exits (1.6.38), as it does at start.
func ProxyArgs(opts ProxyOptions) []string {
	maxConnections, threads := opts.MaxConnections, opts.Threads
	if maxConnections <= 0 {
		maxConnections = DefaultProxyMaxConnections
	}
	if threads <= 0 {
		threads = DefaultProxyThreads
	}
	return []string{
		"-p", strconv.Itoa(Port),
		"-U", "0",
		"-m", strconv.Itoa(ProxyMemoryMB),
		"-c", strconv.Itoa(int(maxConnections)),
		"-t", strconv.Itoa(int(threads)),
		"-o", "proxy_config=routelib,proxy_arg=" + path.Join(ProxyConfigDir, ProxyRoutesKey),
	}
}

// ProxySettings are the proxy's timeouts towards the servers, written in the
// routes file. A server that fails FailureLimit requests in a row (refused,
// timed out, closed) is marked down: the requests for its keys then fail at
// once, with SERVER_ERROR, without waiting, until a reconnection, tried every
// RetrySeconds, succeeds. The keys of the other servers are not affected.
type ProxySettings struct {
	ConnectTimeoutSeconds float64
	ReadTimeoutSeconds    float64
	RetrySeconds          float64
	FailureLimit          int
}

// DefaultProxySettings are shorter than memcached's own defaults (connect 5 s,
// read 3 s, retry 3 s, 3 failures): a cache that answers late is worse than a
// miss, and a server that vanished with its pod, whose address no longer
// answers, would otherwise hold each request for its keys 5 s.
var DefaultProxySettings = ProxySettings{
	ConnectTimeoutSeconds: 1,
	ReadTimeoutSeconds:    1,
	RetrySeconds:          1,
	FailureLimit:          3,
}

// proxyHost is what a server's host may be: a DNS name or an IPv4 or IPv6
// address. It keeps everything ProxyRoutes writes into Lua strings free of
// quotes, backslashes and whitespace.
var proxyHost = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9.])?$`)

// ProxyRoutes renders the proxy's routes file (memcached's route library)
// from the ordered server list, host:port each, as status.serverList holds
// it, with DefaultProxySettings. The same list gives the same bytes, so the
// file can go into a ConfigMap and be hashed.
//
// Every key goes to one pool of all the servers, in list order. The pool
// spreads keys as memcached's proxy does by default: the key's XXH3 64-bit
// hash, then jump consistent hashing over the servers' positions in the list.
// A server appended to the list takes 1/N of the keys from the others and
// moves no other key; a server inserted before others moves more. Each
// backend is labelled with its host:port, so that a reload keeps the
// connections to the servers that stay. An empty list renders a route that
// answers every get with a miss and stores nothing.
func ProxyRoutes(servers []string) ([]byte, error) {
	return ProxyRoutesWith(servers, DefaultProxySettings)
}

// ProxyRoutesWith renders the routes file as ProxyRoutes does, with settings.
func ProxyRoutesWith(servers []string, settings ProxySettings) ([]byte, error) {
	if settings.ConnectTimeoutSeconds <= 0 || settings.ReadTimeoutSeconds <= 0 || settings.RetrySeconds <= 0 ||
		settings.FailureLimit <= 0 {
		return nil, fmt.Errorf("proxy settings %+v: every timeout and the failure limit must be positive", settings)
	}
	type backend struct{ label, host, port string }
	backends := make([]backend, 0, len(servers))
	seen := make(map[string]bool, len(servers))
	for i, server := range servers {
		host, port, err := net.SplitHostPort(server)
		if err != nil {
			return nil, fmt.Errorf("server %d %q is not host:port: %w", i, server, err)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("server %d %q: port %q is not a number from 1 to 65535", i, server, port)
		}
		// memcached's proxy holds at most 255 bytes of a host name.
		if len(host) > 253 || !proxyHost.MatchString(host) {
			return nil, fmt.Errorf("server %d %q: %q is not a DNS name or an IP address", i, server, host)
		}
		if bytes.ContainsRune([]byte(host), ':') && net.ParseIP(host) == nil {
			return nil, fmt.Errorf("server %d %q: %q is not an IPv6 address", i, server, host)
		}
		label := net.JoinHostPort(host, strconv.Itoa(n))
		if seen[label] {
			return nil, fmt.Errorf("server %d %q is listed twice", i, server)
		}
		seen[label] = true
		backends = append(backends, backend{label: label, host: host, port: strconv.Itoa(n)})
	}

	var b bytes.Buffer
	b.WriteString("-- memcached proxy routes (route library), rendered by memcached-operator from the server list.\n")
	fmt.Fprintf(&b, "settings{\n"+
		"    backend_connect_timeout = %s,\n"+
		"    backend_read_timeout = %s,\n"+
		"    backend_retry_waittime = %s,\n"+
		"    backend_failure_limit = %d,\n"+
		"}\n",
		luaNumber(settings.ConnectTimeoutSeconds), luaNumber(settings.ReadTimeoutSeconds),
		luaNumber(settings.RetrySeconds), settings.FailureLimit)
	if len(backends) == 0 {
		b.WriteString("-- No servers: every get misses, nothing is stored.\n" +
			"routes{\n" +
			"    default = route_null{},\n" +
			"}\n")
		return b.Bytes(), nil
	}
	b.WriteString("pools{\n" +
		"    main = {\n" +
		"        backends = {\n")
	for _, be := range backends {
		fmt.Fprintf(&b, "            { label = \"%s\", host = \"%s\", port = \"%s\" },\n", be.label, be.host, be.port)
	}
	b.WriteString("        },\n" +
		"    },\n" +
		"}\n" +
		"routes{\n" +
		"    default = route_direct{ child = \"main\" },\n" +
		"}\n")
	return b.Bytes(), nil
}

// luaNumber writes f as a Lua number literal, in its shortest form.
func luaNumber(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}
