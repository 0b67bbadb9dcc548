package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// secretDigests reads the Secrets a Memcached names and keeps, for each, only
// its keyed digest, or why it cannot be used, with its resourceVersion: the
// manager's cache holds only Secret metadata, and a Secret is read from the
// API server again only when its metadata shows another resourceVersion. A
// reconcile that finds them unchanged costs no request, and the operator's
// memory holds no Secret data.
type secretDigests struct {
	cache     client.Reader // the manager's cache, holding Secret metadata
	apiReader client.Reader // the API server

	mu      sync.Mutex
	entries map[secretEntryKey]secretEntry
}

type secretEntryKey struct {
	client.ObjectKey
	use secretUse
}

type secretEntry struct {
	resourceVersion string
	digest          string
	invalid         *status.SpecError
}

// digest returns the digest of the Secret at key, read for use, or a
// *status.SpecError when it is missing or cannot be used that way.
func (s *secretDigests) digest(ctx context.Context, key client.ObjectKey, use secretUse) (string, error) {
	metadata := &metav1.PartialObjectMetadata{}
	metadata.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	entryKey := secretEntryKey{ObjectKey: key, use: use}
	switch err := s.cache.Get(ctx, key, metadata); {
	case err == nil:
		if e, ok := s.load(entryKey); ok && e.resourceVersion == metadata.ResourceVersion {
			if e.invalid != nil {
				return "", e.invalid
			}
			return e.digest, nil
		}
	case !apierrors.IsNotFound(err):
		return "", fmt.Errorf("failed to get Secret %s: %w", key.Name, err)
	}
	// Changed, or not in the cache yet: the API server has the truth.
	secret := &corev1.Secret{}
	if err := s.apiReader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			s.forget(key)
			return "", &status.SpecError{Reason: status.ReasonSecretNotFound,
				Message: fmt.Sprintf("Secret %s named by %s does not exist in namespace %s", key.Name, use.field(), key.Namespace)}
		}
		return "", fmt.Errorf("failed to get Secret %s: %w", key.Name, err)
	}
	e := secretEntry{resourceVersion: secret.ResourceVersion}
	contents, invalid := usable(secret, use)
	if invalid != nil {
		e.invalid = &status.SpecError{Reason: status.ReasonInvalidSecret,
			Message: fmt.Sprintf("Secret %s of %s %s", secret.Name, use.field(), invalid)}
	} else {
		e.digest = resources.Digest(string(secret.UID), contents...)
	}
	s.store(entryKey, e)
	if e.invalid != nil {
		return "", e.invalid
	}
	return e.digest, nil
}

// usable returns the contents of secret the pods read for use, or why they
// cannot. Errors say what is wrong without quoting any secret value.
func usable(secret *corev1.Secret, use secretUse) ([][]byte, error) {
	switch use {
	case authUsers:
		file, err := memcached.AuthFile(secret.Data)
		if err != nil {
			return nil, fmt.Errorf("cannot be used: %w", err)
		}
		return [][]byte{file}, nil
	case tlsPair, exporterClientTLS:
		if secret.Type != corev1.SecretTypeTLS {
			return nil, fmt.Errorf("has type %q: it must be a %s Secret", secret.Type, corev1.SecretTypeTLS)
		}
		cert, key := secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			return nil, fmt.Errorf("has no valid certificate and key in %s and %s: %w", corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err)
		}
		return [][]byte{cert, key}, nil
	default:
		ca := secret.Data[memcached.ClientCAKey]
		if !x509.NewCertPool().AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("has no PEM certificate in %s", memcached.ClientCAKey)
		}
		return [][]byte{ca}, nil
	}
}

func (s *secretDigests) load(key secretEntryKey) (secretEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	return e, ok
}

func (s *secretDigests) store(key secretEntryKey, e secretEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries == nil {
		s.entries = map[secretEntryKey]secretEntry{}
	}
	s.entries[key] = e
}

// forget drops what is kept of the Secret at key, for every use.
func (s *secretDigests) forget(key client.ObjectKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.entries {
		if k.ObjectKey == key {
			delete(s.entries, k)
		}
	}
}
