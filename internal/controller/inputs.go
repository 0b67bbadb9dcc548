package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// inputs is what the objects of a Memcached are built from besides its spec:
// what the operator read from the Secrets the spec names.
type inputs struct {
	// authFile is memcached's auth file, nil without spec.auth.
	authFile []byte
	hashes   resources.SecretHashes
}

// readInputs checks the spec and reads the Secrets it names. specErr says why
// the spec cannot be applied as it is, e.g. a Secret it names is missing; err
// is any other failure, to be retried.
func (r *MemcachedReconciler) readInputs(ctx context.Context, mc *cachev1alpha1.Memcached) (in inputs, specErr, err error) {
	if err := memcached.CheckMemoryLimit(&mc.Spec); err != nil {
		return in, err, nil
	}
	if auth := mc.Spec.Auth; auth != nil {
		secret, specErr, err := r.readSecret(ctx, mc.Namespace, auth.SecretName, "spec.auth.secretName")
		if specErr != nil || err != nil {
			return in, specErr, err
		}
		file, err := memcached.AuthFile(secret.Data)
		if err != nil {
			return in, invalidSecret("Secret %s of spec.auth.secretName cannot be used: %v", secret.Name, err), nil
		}
		in.authFile, in.hashes.Auth = file, resources.Hash(file)
	}
	if t := mc.Spec.TLS; t != nil {
		secret, specErr, err := r.readSecret(ctx, mc.Namespace, t.SecretName, "spec.tls.secretName")
		if specErr != nil || err != nil {
			return in, specErr, err
		}
		if secret.Type != corev1.SecretTypeTLS {
			return in, invalidSecret("Secret %s of spec.tls.secretName has type %q: it must be a %s Secret",
				secret.Name, secret.Type, corev1.SecretTypeTLS), nil
		}
		cert, key := secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			return in, invalidSecret("Secret %s of spec.tls.secretName has no valid certificate and key in %s and %s: %v",
				secret.Name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey, err), nil
		}
		contents := [][]byte{cert, key}
		if t.ClientCASecretName != "" {
			caSecret, specErr, err := r.readSecret(ctx, mc.Namespace, t.ClientCASecretName, "spec.tls.clientCASecretName")
			if specErr != nil || err != nil {
				return in, specErr, err
			}
			ca := caSecret.Data[memcached.ClientCAKey]
			if !x509.NewCertPool().AppendCertsFromPEM(ca) {
				return in, invalidSecret("Secret %s of spec.tls.clientCASecretName has no PEM certificate in %s",
					caSecret.Name, memcached.ClientCAKey), nil
			}
			contents = append(contents, ca)
		}
		in.hashes.TLS = resources.Hash(contents...)
	}
	return in, nil, nil
}

// readSecret reads a Secret; field is the spec field that names it, for the
// message when it does not exist.
func (r *MemcachedReconciler) readSecret(ctx context.Context, namespace, name, field string) (_ *corev1.Secret, specErr, err error) {
	secret := &corev1.Secret{}
	if err := r.secrets.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &status.SpecError{Reason: status.ReasonSecretNotFound,
				Message: fmt.Sprintf("Secret %s named by %s does not exist in namespace %s", name, field, namespace)}, nil
		}
		return nil, nil, fmt.Errorf("failed to get Secret %s: %w", name, err)
	}
	return secret, nil, nil
}

func invalidSecret(format string, args ...any) error {
	return &status.SpecError{Reason: status.ReasonInvalidSecret, Message: fmt.Sprintf(format, args...)}
}
