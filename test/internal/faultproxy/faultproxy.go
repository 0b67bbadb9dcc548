// Package faultproxy stands between a client and an API server, on
// loopback, and injects faults into what passes: it can end every watch
// and make the next watch of each resource expire, as the API server does
// when etcd has compacted away the client's resourceVersion (410 Gone).
package faultproxy

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// expired is the watch event the API server sends when a watch starts at a
// resourceVersion it no longer has.
const expired = `{"type":"ERROR","object":{"apiVersion":"v1","kind":"Status","metadata":{},"status":"Failure",` +
	`"message":"too old resource version","reason":"Expired","code":410}}` + "\n"

// Proxy forwards requests on loopback to an API server, with the client's
// own credentials. It serves TLS, as clients send their credentials only
// over TLS.
type Proxy struct {
	// URL is where clients reach the proxy.
	URL string
	// CAData is the PEM certificate that clients trust the proxy by.
	CAData []byte

	server  *httptest.Server
	expired atomic.Int64

	mu sync.Mutex
	// watches end the watches under way.
	watches map[*http.Request]context.CancelFunc
	// compacted are the paths whose next watch expires.
	compacted map[string]bool
}

// Start starts a proxy to the API server of cfg. Clients authenticate with
// their own token, which the proxy passes on.
func Start(cfg *rest.Config) (*Proxy, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	transport, err := rest.TransportFor(&rest.Config{Host: cfg.Host, TLSClientConfig: rest.TLSClientConfig{
		CAData: cfg.CAData, CAFile: cfg.CAFile}})
	if err != nil {
		return nil, err
	}
	p := &Proxy{watches: map[*http.Request]context.CancelFunc{}, compacted: map[string]bool{}}
	forward := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
		Transport:     transport,
		FlushInterval: -1, // watches stream
	}
	p.server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if watch := r.URL.Query().Get("watch"); watch != "true" && watch != "1" {
			forward.ServeHTTP(w, r)
			return
		}
		if p.expires(r.URL.Path) {
			p.expired.Add(1)
			writeExpired(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		p.mu.Lock()
		p.watches[r] = cancel
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			delete(p.watches, r)
			p.mu.Unlock()
		}()
		forward.ServeHTTP(w, r.WithContext(ctx))
	}))
	p.server.Config.ReadHeaderTimeout = 10 * time.Second
	p.server.StartTLS()
	p.URL = p.server.URL
	p.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.server.Certificate().Raw})
	return p, nil
}

func writeExpired(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(expired))
}

// expires tells whether the watch of path must expire, and if so, records
// that it did.
func (p *Proxy) expires(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.compacted[path] {
		delete(p.compacted, path)
		return true
	}
	return false
}

// Compact ends the watches under way, and makes the next watch of each
// resource expire with 410 Gone, as when etcd compacts away the
// resourceVersion that the clients watch from: they list again, then watch
// from the new resourceVersion.
func (p *Proxy) Compact() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for r, cancel := range p.watches {
		p.compacted[r.URL.Path] = true
		cancel()
	}
}

// Expired returns how many watches were ended with 410 Gone.
func (p *Proxy) Expired() int64 { return p.expired.Load() }

// Close stops the proxy, ending the connections through it.
func (p *Proxy) Close() error {
	p.server.CloseClientConnections()
	p.server.Close()
	return nil
}
