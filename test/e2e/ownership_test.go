package e2e

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/status"
)

func TestAnObjectOfSomeoneElseOutlivesTheMemcached(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, nil)
	theirs := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache-headless"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}, Selector: map[string]string{"app": "web"}}}
	g.Expect(k8sClient.Create(t.Context(), theirs)).To(Succeed())

	mc := createMemcached(t, ns, 2)
	g.Eventually(func(g Gomega) {
		c := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(status.ReasonOwnershipConflict))
		g.Expect(c.Message).To(ContainSubstring("Service cache-headless exists and is not managed by this Memcached"))
	}).Should(Succeed())
	before := &corev1.Service{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(theirs), before)).To(Succeed())
	g.Expect(before.OwnerReferences).To(BeEmpty())

	// Deleting the Memcached garbage-collects what it owns, not theirs.
	g.Expect(k8sClient.Delete(t.Context(), mc)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), &appsv1.Deployment{}))
	}).Should(BeTrue())
	g.Consistently(func(g Gomega) string {
		after := &corev1.Service{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(theirs), after)).To(Succeed())
		return after.ResourceVersion
	}, 5*time.Second).Should(Equal(before.ResourceVersion))
}
