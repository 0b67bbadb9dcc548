package controller

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// secretReader reads Secrets. The manager's cache holds only their metadata;
// secretReader keeps the data of the Secrets it has read, and reads one from
// the API server again only when the cached metadata shows another
// resourceVersion, or no Secret: a reconcile that finds them unchanged costs
// no request. It holds only Secrets a Memcached names or owns.
type secretReader struct {
	cache     client.Reader // the manager's cache, holding Secret metadata
	apiReader client.Reader // the API server

	mu      sync.Mutex
	secrets map[client.ObjectKey]*corev1.Secret
}

// Get reads the Secret at key into obj, a *corev1.Secret.
func (s *secretReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return fmt.Errorf("secretReader reads Secrets, not %T", obj)
	}
	metadata := &metav1.PartialObjectMetadata{}
	metadata.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	switch err := s.cache.Get(ctx, key, metadata); {
	case err == nil:
		if known := s.load(key); known != nil && known.ResourceVersion == metadata.ResourceVersion {
			known.DeepCopyInto(secret)
			return nil
		}
	case !apierrors.IsNotFound(err):
		return err
	}
	// Changed, or not in the cache yet: the API server has the truth.
	if err := s.apiReader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			s.forget(key)
		}
		return err
	}
	s.Remember(secret)
	return nil
}

// Remember keeps secret, as read or as the API server answered a write.
func (s *secretReader) Remember(secret *corev1.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets == nil {
		s.secrets = map[client.ObjectKey]*corev1.Secret{}
	}
	s.secrets[client.ObjectKeyFromObject(secret)] = secret.DeepCopy()
}

func (s *secretReader) load(key client.ObjectKey) *corev1.Secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.secrets[key]
}

func (s *secretReader) forget(key client.ObjectKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.secrets, key)
}
