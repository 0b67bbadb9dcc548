package controller

import (
	"context"
	"errors"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/status"
)

// The inputs of a reconcile besides what it observes: the checks of the spec
// that only the operator can make, and the Secrets the spec names.

// secretUse is what the pods read a Secret for.
type secretUse int

const (
	authUsers         secretUse = iota // spec.auth.secretName
	tlsPair                            // spec.tls.secretName
	clientCA                           // spec.tls.clientCASecretName
	exporterClientTLS                  // spec.monitoring.tls.clientCertificateSecretName
)

// field returns the spec field that names a Secret of this use.
func (u secretUse) field() string {
	return [...]string{"spec.auth.secretName", "spec.tls.secretName", "spec.tls.clientCASecretName",
		"spec.monitoring.tls.clientCertificateSecretName"}[u]
}

// secretUses are the uses of Secrets, in the order they are read.
var secretUses = []secretUse{authUsers, tlsPair, clientCA, exporterClientTLS}

// name returns the name of the Secret spec names for this use, "" when it
// names none.
func (u secretUse) name(spec *cachev1alpha1.MemcachedSpec) string {
	switch {
	case u == authUsers && spec.Auth != nil:
		return spec.Auth.SecretName
	case u == tlsPair && spec.TLS != nil:
		return spec.TLS.SecretName
	case u == clientCA && spec.TLS != nil:
		return spec.TLS.ClientCASecretName
	case u == exporterClientTLS && spec.MonitoringEnabled() && spec.TLS != nil && spec.Monitoring.TLS != nil:
		return spec.Monitoring.TLS.ClientCertificateSecretName
	}
	return ""
}

// specChecks are the checks of the spec the operator makes before it applies
// anything. The API server makes them too, as the CRD's validation rules:
// these catch a Memcached stored before a rule existed.
var specChecks = []func(*cachev1alpha1.MemcachedSpec) error{
	memcached.CheckMemoryLimit,
	memcached.CheckExtraArgs,
	memcached.CheckExtstore,
}

// readInputs checks the spec of the Memcached of s and reads the Secrets it
// names into s.digests. A spec it refuses, e.g. one naming a Secret that does
// not exist, stops the reconcile with a terminal error; a Secret it cannot
// read, for RBAC or the network, with an error that is retried. Either way
// nothing is applied, and the status says why. The exporter's client
// certificate is the exception: when it cannot be used, only the exporter is
// left as it is (s.outcome.ExporterInputError).
func (r *MemcachedReconciler) readInputs(ctx context.Context, s *scope) error {
	spec := &s.memcached.Spec
	for _, check := range specChecks {
		if err := check(spec); err != nil {
			return r.refuse(s, "Validate", err)
		}
	}
	for _, use := range secretUses {
		name := use.name(spec)
		if name == "" {
			continue
		}
		digest, err := r.secrets.digest(ctx, client.ObjectKey{Namespace: s.memcached.Namespace, Name: name}, use)
		if err != nil && use == exporterClientTLS {
			// Only the exporter reads it: the exporter stays as it is,
			// the cache goes on, and MonitoringReady says why.
			if _, ok := errors.AsType[*status.SpecError](err); !ok {
				err = fmt.Errorf("failed to read Secret %s named by %s: %w", name, use.field(), err)
			}
			s.outcome.ExporterInputError = err
			continue
		}
		if _, ok := errors.AsType[*status.SpecError](err); ok {
			return r.refuse(s, "Validate", err)
		}
		if err != nil {
			s.outcome.ReadError = fmt.Errorf("failed to read Secret %s named by %s, so nothing is applied until it can be: %w",
				name, use.field(), err)
			return s.outcome.ReadError
		}
		switch use {
		case authUsers:
			s.digests.Auth = digest
		case exporterClientTLS:
			s.digests.ExporterTLS = digest
		default:
			s.digests.TLS += digest
		}
	}
	return nil
}
