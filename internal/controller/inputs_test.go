package controller

import (
	"errors"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/status"
)

func TestASecretTheOperatorCannotReadIsReportedInStatus(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createSecret(t, ns, "users", corev1.SecretTypeOpaque, map[string][]byte{"app": []byte("secret")})
	restore := failSecretReads(t, ns, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "users",
		errForbiddenByRBAC))

	mc := createMemcached(t, ns, "cache", 1)
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"} })

	// The error reaches the status, with the Secret and the field that
	// names it; nothing is created meanwhile.
	expectDegraded(t, mc, status.ReasonSecretUnreadable, "failed to read Secret users named by spec.auth.secretName")
	expectDegraded(t, mc, status.ReasonSecretUnreadable, "forbidden")
	current := getMemcached(t, g, mc)
	g.Expect(current.Status.ObservedGeneration).NotTo(Equal(current.Generation))

	// Once it can be read, the Memcached recovers without a change of its own.
	restore()
	converged(t, mc)
	g.Eventually(func(g Gomega) bool {
		return meta.IsStatusConditionFalse(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)
	}).Should(BeTrue())
}

var errForbiddenByRBAC = errorString(`User "system:serviceaccount:memcached-operator-system:controller-manager" cannot get resource "secrets"`)

type errorString string

func (e errorString) Error() string { return string(e) }

func TestAStatusWriteWaitsUntilTheCacheHoldsIt(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)

	// Another writer's condition: a status write the reconciler did not make.
	for i := range 20 {
		current := getMemcached(t, g, mc)
		meta.SetStatusCondition(&current.Status.Conditions, metav1.Condition{Type: "Backup", Status: metav1.ConditionTrue,
			Reason: "Done", Message: fmt.Sprintf("backup %d", i)})
		g.Expect(k8sClient.Status().Update(t.Context(), current)).To(Succeed())

		g.Expect(reconciler.waitForCache(t.Context(), client.ObjectKeyFromObject(mc), current.ResourceVersion)).To(Succeed())
		cached, err := reconciler.getMemcached(t.Context(), client.ObjectKeyFromObject(mc))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(meta.FindStatusCondition(cached.Status.Conditions, "Backup").Message).To(Equal(fmt.Sprintf("backup %d", i)),
			"the cache does not hold the write yet")
	}

	// A Memcached that is gone is not waited for.
	g.Expect(k8sClient.Delete(t.Context(), mc)).To(Succeed())
	g.Expect(reconciler.waitForCache(t.Context(), client.ObjectKeyFromObject(mc), "999999999")).To(Succeed())
}

func TestASpecNoRetryCanFixCountsAsATerminalError(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	before := terminalErrors(g)
	mc := &cachev1alpha1.Memcached{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache"},
		Spec: cachev1alpha1.MemcachedSpec{Size: 1, Auth: &cachev1alpha1.AuthSpec{SecretName: "missing"}}}
	g.Expect(k8sClient.Create(t.Context(), mc)).To(Succeed())
	expectDegraded(t, mc, status.ReasonSecretNotFound, "Secret missing named by spec.auth.secretName does not exist")
	g.Eventually(func(g Gomega) float64 { return terminalErrors(g) }).Should(BeNumerically(">", before))

	// It is not retried: a reconcile returns it as terminal, and asks for
	// nothing else.
	result, err := reconciler.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(mc)})
	g.Expect(errors.Is(err, reconcile.TerminalError(nil))).To(BeTrue(), "the error %v is not terminal", err)
	g.Expect(result.IsZero()).To(BeTrue())
}

// terminalErrors returns how many terminal errors the Memcached controller
// has counted.
func terminalErrors(g Gomega) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, family := range families {
		if family.GetName() != "controller_runtime_terminal_reconcile_errors_total" {
			continue
		}
		for _, m := range family.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "memcached" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
