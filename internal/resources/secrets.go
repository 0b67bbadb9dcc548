package resources

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// AuthSecretName returns the name of the Secret holding the auth file of mc.
func AuthSecretName(mc *cachev1alpha1.Memcached) string {
	return mc.Name + "-auth"
}

// AuthFile renders memcached's auth file from the username/password pairs of
// users: one "username:password" line per user, sorted by username. It
// refuses what memcached would misread: no users, a username that is empty
// or has a colon, a password that is empty, and line breaks. Errors name the
// key, never a password.
func AuthFile(users map[string][]byte) ([]byte, error) {
	if len(users) == 0 {
		return nil, fmt.Errorf("it has no username/password pairs")
	}
	names := make([]string, 0, len(users))
	for name := range users {
		names = append(names, name)
	}
	slices.Sort(names)
	var file bytes.Buffer
	for _, name := range names {
		password := users[name]
		switch {
		case bytes.ContainsAny([]byte(name), ":\r\n"):
			return nil, fmt.Errorf("username %q has a colon or a line break", name)
		case len(password) == 0:
			return nil, fmt.Errorf("the password of %q is empty", name)
		case bytes.ContainsAny(password, "\r\n"):
			return nil, fmt.Errorf("the password of %q has a line break", name)
		}
		fmt.Fprintf(&file, "%s:%s\n", name, password)
	}
	return file.Bytes(), nil
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
