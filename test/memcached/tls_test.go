package memcached_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/test/internal/testca"
)

// TestRealMemcachedTLS runs real memcached with the arguments Args renders for
// spec.tls and Go TLS clients: plain connections fail, TLS ones work, and
// with a client CA only clients with a certificate it signed get answers.
func TestRealMemcachedTLS(t *testing.T) {
	binary := memcachedBinary(t)
	serverCA := testca.New(t, "server CA")
	clientCA := testca.New(t, "client CA")
	serverCert, serverKey := serverCA.Issue(t, "memcached", x509.ExtKeyUsageServerAuth)
	tlsDir, caDir := readableDir(t), readableDir(t)
	writeFile(t, filepath.Join(tlsDir, corev1.TLSCertKey), serverCert)
	writeFile(t, filepath.Join(tlsDir, corev1.TLSPrivateKeyKey), serverKey)
	writeFile(t, filepath.Join(caDir, memcached.ClientCAKey), clientCA.CertPEM)
	dirs := map[string]string{memcached.TLSDir: tlsDir, memcached.ClientCADir: caDir}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA.CertPEM)
	version := func(addr string, cfg *tls.Config) (string, error) {
		cfg.RootCAs, cfg.ServerName = roots, "localhost"
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, cfg)
		if err != nil {
			return "", err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprint(conn, "version\r\n"); err != nil {
			return "", err
		}
		return bufio.NewReader(conn).ReadString('\n')
	}

	t.Run("server certificate only", func(t *testing.T) {
		spec := &cachev1alpha1.MemcachedSpec{TLS: &cachev1alpha1.TLSSpec{SecretName: "tls"}}
		addr := startMemcached(t, binary, withDirs(memcached.Args(spec), dirs)).addr
		if got, err := version(addr, &tls.Config{}); err != nil || !strings.HasPrefix(got, "VERSION ") {
			t.Errorf("version over TLS answered %q, %v; want VERSION", got, err)
		}
		if got := plainVersion(t, addr); strings.HasPrefix(got, "VERSION ") {
			t.Errorf("version over plain TCP answered %q: memcached must accept TLS only", got)
		}
	})

	t.Run("client certificates required", func(t *testing.T) {
		spec := &cachev1alpha1.MemcachedSpec{TLS: &cachev1alpha1.TLSSpec{SecretName: "tls", ClientCASecretName: "ca"}}
		addr := startMemcached(t, binary, withDirs(memcached.Args(spec), dirs)).addr

		if got, err := version(addr, &tls.Config{}); err == nil {
			t.Errorf("a client without a certificate got %q, want a failed handshake", got)
		}
		other := testca.New(t, "another CA")
		for name, ca := range map[string]*testca.CA{"signed by another CA": other, "signed by the client CA": clientCA} {
			certPEM, keyPEM := ca.Issue(t, "client", x509.ExtKeyUsageClientAuth)
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			got, err := version(addr, &tls.Config{Certificates: []tls.Certificate{cert}})
			switch ok := err == nil && strings.HasPrefix(got, "VERSION "); {
			case ca == clientCA && !ok:
				t.Errorf("a client certificate %s: got %q, %v; want VERSION", name, got, err)
			case ca != clientCA && ok:
				t.Errorf("a client certificate %s was accepted", name)
			}
		}
	})
}
