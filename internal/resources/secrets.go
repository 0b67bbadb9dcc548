package resources

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// AuthSecretName returns the name of the Secret holding the auth file of mc.
func AuthSecretName(mc *cachev1alpha1.Memcached) string {
	return mc.Name + "-auth"
}

// AuthSecret returns the Secret that the memcached pods mount their auth
// file from.
func AuthSecret(mc *cachev1alpha1.Memcached, authFile []byte) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(AuthSecretName(mc), mc.Namespace).
		WithLabels(Labels(mc)).
		WithOwnerReferences(ownerReference(mc)).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{memcached.AuthFileKey: authFile})
}

// Hash returns a digest of the given contents, in order, for a pod template
// annotation that changes when they do.
func Hash(contents ...[]byte) string {
	h := sha256.New()
	for _, c := range contents {
		// The length keeps ("ab", "c") and ("a", "bc") apart.
		fmt.Fprintf(h, "%d:", len(c))
		h.Write(c)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
