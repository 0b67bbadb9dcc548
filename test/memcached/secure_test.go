package memcached_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// TestRealMemcachedAuth runs real memcached with the auth file AuthFile
// renders and the arguments Args renders for spec.auth: a client must log in
// before any command, and only with a pair of the Secret.
func TestRealMemcachedAuth(t *testing.T) {
	binary := memcachedBinary(t)
	file, err := memcached.AuthFile(map[string][]byte{"app": []byte("s3cret:pass"), "admin": []byte("other")})
	if err != nil {
		t.Fatal(err)
	}
	authDir := readableDir(t)
	writeFile(t, filepath.Join(authDir, memcached.AuthFileKey), file)
	args := withDirs(memcached.Args(&cachev1alpha1.MemcachedSpec{Auth: &cachev1alpha1.AuthSpec{SecretName: "users"}}),
		map[string]string{memcached.AuthDir: authDir})
	addr := startMemcached(t, binary, args)

	dial := func() *textConn {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return newTextConn(t, conn)
	}

	t.Run("a client that does not log in is refused", func(t *testing.T) {
		c := dial()
		if got := c.send("set greeting 0 0 5\r\nhello"); !strings.HasPrefix(got, "CLIENT_ERROR") {
			t.Errorf("set without logging in answered %q, want a CLIENT_ERROR", got)
		}
	})
	t.Run("a wrong password is refused", func(t *testing.T) {
		c := dial()
		if got := c.login("app", "wrong"); !strings.HasPrefix(got, "CLIENT_ERROR") {
			t.Errorf("logging in with a wrong password answered %q, want a CLIENT_ERROR", got)
		}
	})
	t.Run("each user of the Secret can log in and use the cache", func(t *testing.T) {
		for user, password := range map[string]string{"app": "s3cret:pass", "admin": "other"} {
			c := dial()
			if got := c.login(user, password); got != "STORED" {
				t.Fatalf("logging in as %s answered %q, want STORED", user, got)
			}
			if got := c.send("set greeting 0 0 5\r\nhello"); got != "STORED" {
				t.Errorf("set as %s answered %q, want STORED", user, got)
			}
			if got := c.send("get greeting"); got != "VALUE greeting 0 5" {
				t.Errorf("get as %s answered %q, want the value", user, got)
			}
		}
	})
}

// TestRealMemcachedTLS runs real memcached with the arguments Args renders for
// spec.tls and Go TLS clients: plain connections fail, TLS ones work, and
// with a client CA only clients with a certificate it signed get answers.
func TestRealMemcachedTLS(t *testing.T) {
	binary := memcachedBinary(t)
	serverCA := newCA(t, "server CA")
	clientCA := newCA(t, "client CA")
	serverCert, serverKey := serverCA.issue(t, "memcached", x509.ExtKeyUsageServerAuth)
	tlsDir, caDir := readableDir(t), readableDir(t)
	writeFile(t, filepath.Join(tlsDir, corev1.TLSCertKey), serverCert)
	writeFile(t, filepath.Join(tlsDir, corev1.TLSPrivateKeyKey), serverKey)
	writeFile(t, filepath.Join(caDir, memcached.ClientCAKey), clientCA.certPEM)
	dirs := map[string]string{memcached.TLSDir: tlsDir, memcached.ClientCADir: caDir}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA.certPEM)
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
		addr := startMemcached(t, binary, withDirs(memcached.Args(spec), dirs))
		if got, err := version(addr, &tls.Config{}); err != nil || !strings.HasPrefix(got, "VERSION ") {
			t.Errorf("version over TLS answered %q, %v; want VERSION", got, err)
		}
		if got := plainVersion(t, addr); strings.HasPrefix(got, "VERSION ") {
			t.Errorf("version over plain TCP answered %q: memcached must accept TLS only", got)
		}
	})

	t.Run("client certificates required", func(t *testing.T) {
		spec := &cachev1alpha1.MemcachedSpec{TLS: &cachev1alpha1.TLSSpec{SecretName: "tls", ClientCASecretName: "ca"}}
		addr := startMemcached(t, binary, withDirs(memcached.Args(spec), dirs))

		if got, err := version(addr, &tls.Config{}); err == nil {
			t.Errorf("a client without a certificate got %q, want a failed handshake", got)
		}
		other := newCA(t, "another CA")
		for name, ca := range map[string]*testCA{"signed by another CA": other, "signed by the client CA": clientCA} {
			certPEM, keyPEM := ca.issue(t, "client", x509.ExtKeyUsageClientAuth)
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

func memcachedBinary(t *testing.T) string {
	t.Helper()
	if binary := os.Getenv("MEMCACHED_BINARY"); binary != "" {
		return binary
	}
	binary, err := exec.LookPath("memcached")
	if err != nil {
		t.Fatal("memcached is not installed: install Debian's memcached package (apt-get install memcached), as .ci/run does")
	}
	return binary
}

// withDirs returns args with the directories the pod mounts Secrets in
// replaced by the test's.
func withDirs(args []string, dirs map[string]string) []string {
	out := make([]string, len(args))
	for i, arg := range args {
		for from, to := range dirs {
			arg = strings.ReplaceAll(arg, from+"/", to+"/")
		}
		out[i] = arg
	}
	return out
}

// readableDir returns a temporary directory that memcached can read when it
// drops root to nobody.
func readableDir(t *testing.T) string {
	t.Helper()
	// Not t.TempDir: its parent is private to the test's user.
	dir, err := os.MkdirTemp("", "memcached-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// textConn speaks memcached's text protocol on one connection.
type textConn struct {
	t      *testing.T
	conn   net.Conn
	reader *bufio.Reader
}

func newTextConn(t *testing.T, conn net.Conn) *textConn {
	return &textConn{t: t, conn: conn, reader: bufio.NewReader(conn)}
}

// send sends a command and returns the first line of the answer, or the
// error that ended the connection.
func (c *textConn) send(command string) string {
	c.t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "%s\r\n", command); err != nil {
		return err.Error()
	}
	line, err := c.reader.ReadString('\n')
	if err != nil {
		return err.Error()
	}
	return strings.TrimRight(line, "\r\n")
}

// login authenticates as memcached's text protocol has it: a set whose value
// is "username password".
func (c *textConn) login(user, password string) string {
	credentials := user + " " + password
	return c.send(fmt.Sprintf("set auth 0 0 %d\r\n%s", len(credentials), credentials))
}

func plainVersion(t *testing.T, addr string) string {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	return newTextConn(t, conn).send("version")
}

type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for localhost and 127.0.0.1 signed by ca, and
// its key, in PEM.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
