package resources

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Annotations of the pod template that change when a Secret the pods read
// changes, so that the workload replaces the pods.
const (
	AuthDigestAnnotation = "cache.example.com/auth-digest"
	TLSDigestAnnotation  = "cache.example.com/tls-digest"
)

// SecretDigests are digests of the Secret contents the pods read, empty for
// what the spec does not ask for.
type SecretDigests struct {
	// Auth is the digest of the auth file rendered from spec.auth's Secret.
	Auth string
	// TLS is the digest of the certificate, key and client CA.
	TLS string
	// ExporterTLS is the digest of the exporter's client certificate and
	// key, which only the exporter's pods read.
	ExporterTLS string
}

// Digest returns a digest of contents, in order, keyed with key: a pod
// template annotation that changes when they do. Keyed with something only
// readers of the Secret know, such as its UID, it tells nothing of the
// contents to those who can read pods but not the Secret: they cannot test
// guesses of a password against it.
func Digest(key string, contents ...[]byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	for _, c := range contents {
		// The length keeps ("ab", "c") and ("a", "bc") apart.
		fmt.Fprintf(mac, "%d:", len(c))
		mac.Write(c)
	}
	return hex.EncodeToString(mac.Sum(nil))[:32]
}
