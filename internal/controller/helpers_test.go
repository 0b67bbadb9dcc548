package controller

import (
	"errors"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

const timeout = 20 * time.Second

func init() {
	SetDefaultEventuallyTimeout(timeout)
}

func createMemcached(t *testing.T, namespace, name string, size int32) *cachev1alpha1.Memcached {
	t.Helper()
	mc := &cachev1alpha1.Memcached{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       cachev1alpha1.MemcachedSpec{Size: size},
	}
	if err := k8sClient.Create(t.Context(), mc); err != nil {
		t.Fatalf("Failed to create Memcached: %v", err)
	}
	return mc
}

// createPod creates a pod that carries the labels of mc's pods, as the
// ReplicaSet controller would (envtest runs no controller-manager).
func createPod(t *testing.T, mc *cachev1alpha1.Memcached, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: mc.Namespace, Name: name, Labels: resources.Labels(mc)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "memcached", Image: resources.DefaultImage}}},
	}
	if err := k8sClient.Create(t.Context(), pod); err != nil {
		t.Fatalf("Failed to create pod: %v", err)
	}
	return pod
}

// setPodReady marks pod Running and Ready with ip, as a kubelet would.
func setPodReady(t *testing.T, pod *corev1.Pod, ip string) {
	t.Helper()
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
	}
	if err := k8sClient.Status().Update(t.Context(), pod); err != nil {
		t.Fatalf("Failed to update pod status: %v", err)
	}
}

// deploymentOf waits for the Deployment of mc to exist and returns it.
func deploymentOf(t *testing.T, mc *cachev1alpha1.Memcached) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	NewWithT(t).Eventually(func() error {
		return k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), d)
	}).Should(Succeed())
	return d
}

// nodesOf returns a function that reads mc's status.nodes, for Eventually.
func nodesOf(t *testing.T, mc *cachev1alpha1.Memcached) func(Gomega) []string {
	return func(g Gomega) []string {
		return getMemcached(t, g, mc).Status.Nodes
	}
}

// replicasOf returns a function that reads the replicas of mc's
// Deployment, for Eventually.
func replicasOf(t *testing.T, mc *cachev1alpha1.Memcached) func(Gomega) int32 {
	return func(g Gomega) int32 {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), d)).To(Succeed())
		g.Expect(d.Spec.Replicas).NotTo(BeNil())
		return *d.Spec.Replicas
	}
}

func getMemcached(t *testing.T, g Gomega, mc *cachev1alpha1.Memcached) *cachev1alpha1.Memcached {
	current := &cachev1alpha1.Memcached{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
	return current
}

// converged waits until the operator has reconciled the current generation of mc.
func converged(t *testing.T, mc *cachev1alpha1.Memcached) *cachev1alpha1.Memcached {
	t.Helper()
	var current *cachev1alpha1.Memcached
	NewWithT(t).Eventually(func(g Gomega) {
		current = getMemcached(t, g, mc)
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		g.Expect(current.Status.Conditions).To(HaveLen(3))
	}).Should(Succeed())
	return current
}

// patchSpec changes the spec of mc as a user would.
func patchSpec(t *testing.T, mc *cachev1alpha1.Memcached, mutate func(*cachev1alpha1.MemcachedSpec)) {
	t.Helper()
	g := NewWithT(t)
	current := getMemcached(t, g, mc)
	patch := client.MergeFrom(current.DeepCopy())
	mutate(&current.Spec)
	g.Expect(k8sClient.Patch(t.Context(), current, patch)).To(Succeed())
	mc.Generation = current.Generation
}

// expectDegraded waits for mc's Degraded condition to have reason and a
// message holding message.
func expectDegraded(t *testing.T, mc *cachev1alpha1.Memcached, reason, message string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(reason))
		g.Expect(c.Message).To(ContainSubstring(message))
	}).Should(Succeed())
}

// expectUnchanged checks that obj keeps its resourceVersion: a reconcile of
// every Memcached of its namespace, and of the Memcached it belongs to if
// that one is gone, leaves it alone.
func expectUnchanged(t *testing.T, obj client.Object) {
	t.Helper()
	var names []string
	if name := obj.GetLabels()[resources.InstanceLabel]; name != "" {
		names = append(names, name)
	}
	reconcileNow(t, obj.GetNamespace(), names...)
	current := obj.DeepCopyObject().(client.Object)
	g := NewWithT(t)
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(obj), current)).To(Succeed())
	g.Expect(current.GetResourceVersion()).To(Equal(obj.GetResourceVersion()), "%T %s was changed", obj, obj.GetName())
}

// reconcileNow reconciles every Memcached of namespace, and those named, once
// the operator's cache holds each as the API server does: a Memcached that
// is gone is reconciled as when the operator sees it go. What a reconcile
// returns is not checked: the caller checks what it did.
func reconcileNow(t *testing.T, namespace string, names ...string) {
	t.Helper()
	g := NewWithT(t)
	list := &cachev1alpha1.MemcachedList{}
	g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(namespace))).To(Succeed())
	for _, mc := range list.Items {
		names = append(names, mc.Name)
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		key := client.ObjectKey{Namespace: namespace, Name: name}
		g.Eventually(func(g Gomega) {
			live := &cachev1alpha1.Memcached{}
			err := k8sClient.Get(t.Context(), key, live)
			cached, cacheErr := reconciler.getMemcached(t.Context(), key)
			if apierrors.IsNotFound(err) {
				g.Expect(apierrors.IsNotFound(cacheErr)).To(BeTrue(), "the cache still holds %s: %v", key, cacheErr)
			} else {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(cacheErr).NotTo(HaveOccurred())
				g.Expect(cached.ResourceVersion).To(Equal(live.ResourceVersion), "the cache lags behind %s", key)
			}
		}).Should(Succeed())
		_, _ = reconciler.Reconcile(t.Context(), ctrl.Request{NamespacedName: key})
	}
}

// expectNoRetry reconciles mc, once the cache holds it as the API server
// does, and expects the reconcile to ask for no retry: neither an error that
// is not terminal, which the controller retries with backoff, nor a requeue.
func expectNoRetry(t *testing.T, mc *cachev1alpha1.Memcached) {
	t.Helper()
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		live := getMemcached(t, g, mc)
		cached, err := reconciler.getMemcached(t.Context(), client.ObjectKeyFromObject(mc))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cached.ResourceVersion).To(Equal(live.ResourceVersion))
	}).Should(Succeed())
	result, err := reconciler.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(mc)})
	if !errors.Is(err, reconcile.TerminalError(nil)) {
		g.Expect(err).NotTo(HaveOccurred(), "the controller retries a reconcile that fails")
	}
	g.Expect(result.IsZero()).To(BeTrue(), "the reconcile asks to be requeued: %+v", result)
}

// expectIdle waits until the manager's Memcached controller has no reconcile
// under way and none ready to start, as its metrics tell.
func expectIdle(t *testing.T) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		families, err := ctrlmetrics.Registry.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		busy, found := 0.0, map[string]bool{}
		for _, family := range families {
			if family.GetName() != "workqueue_depth" && family.GetName() != "controller_runtime_active_workers" {
				continue
			}
			for _, m := range family.GetMetric() {
				for _, l := range m.GetLabel() {
					if (l.GetName() == "name" || l.GetName() == "controller") && l.GetValue() == "memcached" {
						busy += m.GetGauge().GetValue()
						found[family.GetName()] = true
						break
					}
				}
			}
		}
		g.Expect(found).To(HaveLen(2), "the controller's metrics are missing")
		g.Expect(busy).To(BeZero(), "reconciles queued or under way")
	}).Should(Succeed())
}

// podAnnotation returns a function that reads an annotation of mc's pod
// template, for Eventually.
func podAnnotation(t *testing.T, mc *cachev1alpha1.Memcached, key string) func(Gomega) string {
	return func(g Gomega) string {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), d)).To(Succeed())
		return d.Spec.Template.Annotations[key]
	}
}

// expectNoOpReconcile reconciles mc, converged, and expects no request to the
// API server.
func expectNoOpReconcile(t *testing.T, mc *cachev1alpha1.Memcached) {
	t.Helper()
	g := NewWithT(t)
	// The cache has seen the last writes once the status is current in it.
	g.Eventually(func(g Gomega) {
		cached, err := reconciler.getMemcached(t.Context(), client.ObjectKeyFromObject(mc))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cached.Status.ObservedGeneration).To(Equal(cached.Generation))
		g.Expect(requests.during(mc.Namespace, func() {
			_, err := reconciler.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(mc)})
			if !errors.Is(err, reconcile.TerminalError(nil)) { // a spec refused stays refused
				g.Expect(err).NotTo(HaveOccurred())
			}
		})).To(BeEmpty())
	}).Should(Succeed())
}

func createSecret(t *testing.T, namespace, name string, typ corev1.SecretType, data map[string][]byte) *corev1.Secret {
	t.Helper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Type: typ, Data: data}
	if err := k8sClient.Create(t.Context(), secret); err != nil {
		t.Fatalf("Failed to create Secret: %v", err)
	}
	return secret
}

func updateSecretData(t *testing.T, secret *corev1.Secret, data map[string][]byte) {
	t.Helper()
	secret.Data = data
	if err := k8sClient.Update(t.Context(), secret); err != nil {
		t.Fatalf("Failed to update Secret: %v", err)
	}
}

// eventReasons lists the reasons of the events about mc, for Eventually.
func eventReasons(t *testing.T, mc *cachev1alpha1.Memcached) func(Gomega) []string {
	return func(g Gomega) []string {
		list := &eventsv1.EventList{}
		g.Expect(k8sClient.List(t.Context(), list, client.InNamespace(mc.Namespace))).To(Succeed())
		var reasons []string
		for _, e := range list.Items {
			if e.Regarding.Name == mc.Name && e.Regarding.Kind == "Memcached" {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}
}
