package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

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

// expectTemplateUnchanged checks that the Deployment of mc keeps the
// generation of d: its pods are left alone.
func expectTemplateUnchanged(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	NewWithT(t).Consistently(func(g Gomega) int64 {
		current := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(d), current)).To(Succeed())
		return current.Generation
	}).Should(Equal(d.Generation), "the Deployment was changed")
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
		cached := &cachev1alpha1.Memcached{}
		g.Expect(reconciler.Get(t.Context(), client.ObjectKeyFromObject(mc), cached)).To(Succeed())
		g.Expect(cached.Status.ObservedGeneration).To(Equal(cached.Generation))
		g.Expect(requests.during(mc.Namespace, func() {
			_, err := reconciler.Reconcile(t.Context(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(mc)})
			g.Expect(err).NotTo(HaveOccurred())
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

func TestAuthFileIsRenderedAndRollsPods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	converged(t, mc)
	before := deploymentOf(t, mc)

	// A missing Secret degrades the Memcached and leaves its pods alone.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"} })
	expectDegraded(t, mc, status.ReasonSecretNotFound, "Secret users named by spec.auth.secretName does not exist in namespace "+ns)
	expectTemplateUnchanged(t, before)

	// Creating it is noticed: the auth file is rendered into a Secret of the
	// operator's, mounted by the pods, and the pods roll.
	users := createSecret(t, ns, "users", corev1.SecretTypeOpaque, map[string][]byte{"app": []byte("first")})
	authKey := client.ObjectKey{Namespace: ns, Name: "cache-auth"}
	authFile := func(g Gomega) string {
		secret := &corev1.Secret{}
		g.Expect(k8sClient.Get(t.Context(), authKey, secret)).To(Succeed())
		g.Expect(metav1.IsControlledBy(secret, mc)).To(BeTrue())
		return string(secret.Data[memcached.AuthFileKey])
	}
	g.Eventually(authFile).Should(Equal("app:first\n"))
	g.Eventually(podAnnotation(t, mc, resources.AuthHashAnnotation)).ShouldNot(BeEmpty())
	firstHash := podAnnotation(t, mc, resources.AuthHashAnnotation)(g)
	converged(t, mc)
	d := deploymentOf(t, mc)
	g.Expect(d.Spec.Template.Spec.Containers[0].Args).To(ContainElements("-Y", "/etc/memcached/auth/users"))
	g.Expect(d.Spec.Template.Spec.Containers[0].Args).NotTo(ContainElement(ContainSubstring("first")), "a password is in the arguments")
	g.Expect(d.Spec.Template.Spec.Containers[0].Env).To(BeEmpty())
	g.Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", "cache-auth")))
	g.Expect(meta.IsStatusConditionFalse(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())

	// With the Secrets unchanged, a reconcile reads them from memory: no request.
	expectNoOpReconcile(t, mc)

	// Changing the Secret changes the file and rolls the pods again.
	updateSecretData(t, users, map[string][]byte{"app": []byte("second"), "ops": []byte("third")})
	g.Eventually(authFile).Should(Equal("app:second\nops:third\n"))
	g.Eventually(podAnnotation(t, mc, resources.AuthHashAnnotation)).ShouldNot(Equal(firstHash))

	// A hand edit of the rendered Secret is put back.
	rendered := &corev1.Secret{}
	g.Expect(k8sClient.Get(t.Context(), authKey, rendered)).To(Succeed())
	rendered.Data[memcached.AuthFileKey] = []byte("intruder:pw\n")
	g.Expect(k8sClient.Update(t.Context(), rendered)).To(Succeed())
	g.Eventually(authFile).Should(Equal("app:second\nops:third\n"))

	// A pair memcached cannot read is refused, naming the user only.
	stable := deploymentOf(t, mc)
	updateSecretData(t, users, map[string][]byte{"app": []byte("has space")})
	expectDegraded(t, mc, status.ReasonInvalidSecret, `the password of "app" has whitespace`)
	g.Expect(meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded).Message).
		NotTo(ContainSubstring("has space"))
	expectTemplateUnchanged(t, stable)

	// Turning auth off deletes the rendered Secret.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Auth = nil })
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), authKey, &corev1.Secret{}))
	}).Should(BeTrue())
	g.Eventually(podAnnotation(t, mc, resources.AuthHashAnnotation)).Should(BeEmpty())
}

func TestTLSSecretsAreCheckedAndRotationRollsPods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	before := deploymentOf(t, mc)

	// A Secret that is not of type kubernetes.io/tls is refused.
	cert, key, err := certutil.GenerateSelfSignedCertKey("cache", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	opaque := createSecret(t, ns, "opaque", corev1.SecretTypeOpaque, map[string][]byte{"tls.crt": cert, "tls.key": key})
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.TLS = &cachev1alpha1.TLSSpec{SecretName: opaque.Name}
	})
	expectDegraded(t, mc, status.ReasonInvalidSecret, `Secret opaque of spec.tls.secretName has type "Opaque"`)
	expectTemplateUnchanged(t, before)

	// A missing client CA Secret is reported.
	serving := createSecret(t, ns, "serving", corev1.SecretTypeTLS, map[string][]byte{"tls.crt": cert, "tls.key": key})
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.TLS = &cachev1alpha1.TLSSpec{SecretName: serving.Name, ClientCASecretName: "client-ca"}
	})
	expectDegraded(t, mc, status.ReasonSecretNotFound, "Secret client-ca named by spec.tls.clientCASecretName does not exist")

	// With both, memcached serves TLS and requires client certificates.
	caCert, _, err := certutil.GenerateSelfSignedCertKey("client-ca", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	createSecret(t, ns, "client-ca", corev1.SecretTypeOpaque, map[string][]byte{"ca.crt": caCert})
	g.Eventually(podAnnotation(t, mc, resources.TLSHashAnnotation)).ShouldNot(BeEmpty())
	firstHash := podAnnotation(t, mc, resources.TLSHashAnnotation)(g)
	converged(t, mc)
	args := deploymentOf(t, mc).Spec.Template.Spec.Containers[0].Args
	g.Expect(args).To(ContainElements("-Z", ContainSubstring("ssl_verify_mode=2")))

	// A renewed certificate rolls the pods.
	cert, key, err = certutil.GenerateSelfSignedCertKey("cache-renewed", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	updateSecretData(t, serving, map[string][]byte{"tls.crt": cert, "tls.key": key})
	g.Eventually(podAnnotation(t, mc, resources.TLSHashAnnotation)).ShouldNot(Equal(firstHash))

	// A certificate that does not match its key is refused.
	_, otherKey, err := certutil.GenerateSelfSignedCertKey("other", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	updateSecretData(t, serving, map[string][]byte{"tls.crt": cert, "tls.key": otherKey})
	expectDegraded(t, mc, status.ReasonInvalidSecret, "has no valid certificate and key")
}

func TestPodDisruptionBudgetFollowsSize(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 3)
	key := client.ObjectKeyFromObject(mc)
	pdb := func(g Gomega) *policyv1.PodDisruptionBudget {
		current := &policyv1.PodDisruptionBudget{}
		g.Expect(k8sClient.Get(t.Context(), key, current)).To(Succeed())
		g.Expect(metav1.IsControlledBy(current, mc)).To(BeTrue())
		g.Expect(current.Spec.Selector.MatchLabels).To(Equal(resources.SelectorLabels(mc)))
		return current
	}
	g.Eventually(func(g Gomega) *intstr.IntOrString { return pdb(g).Spec.MaxUnavailable }).
		Should(Equal(ptr.To(intstr.FromInt32(1))))

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.PodDisruptionBudget = &cachev1alpha1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromString("50%"))}
	})
	g.Eventually(func(g Gomega) *intstr.IntOrString { return pdb(g).Spec.MinAvailable }).
		Should(Equal(ptr.To(intstr.FromString("50%"))))
	g.Expect(pdb(g).Spec.MaxUnavailable).To(BeNil(), "maxUnavailable was left next to minAvailable")

	// One pod has nothing to budget: the budget goes, and comes back with size.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 1 })
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), key, &policyv1.PodDisruptionBudget{}))
	}).Should(BeTrue())
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 2 })
	g.Eventually(func(g Gomega) *intstr.IntOrString { return pdb(g).Spec.MinAvailable }).ShouldNot(BeNil())
}

func TestNetworkPolicyIsOptional(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)
	key := client.ObjectKeyFromObject(mc)
	g.Expect(apierrors.IsNotFound(k8sClient.Get(t.Context(), key, &networkingv1.NetworkPolicy{}))).To(BeTrue())

	web := networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.NetworkPolicy = &cachev1alpha1.NetworkPolicySpec{AllowedFrom: []networkingv1.NetworkPolicyPeer{web}}
	})
	g.Eventually(func(g Gomega) {
		np := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(t.Context(), key, np)).To(Succeed())
		g.Expect(metav1.IsControlledBy(np, mc)).To(BeTrue())
		g.Expect(np.Spec.Ingress).To(HaveLen(1))
		g.Expect(np.Spec.Ingress[0].Ports[0].Port.IntValue()).To(Equal(11211))
		g.Expect(np.Spec.Ingress[0].From).To(ContainElement(web))
	}).Should(Succeed())

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.NetworkPolicy = nil })
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(t.Context(), key, &networkingv1.NetworkPolicy{}))
	}).Should(BeTrue())
}

func TestMonitoringWithoutServiceMonitorAPI(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	converged(t, mc)

	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
	})
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		c := meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionMonitoringReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(ReasonServiceMonitorAPIMissing))
		g.Expect(c.Message).To(ContainSubstring("no monitoring.coreos.com/v1 ServiceMonitor API"))
		g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	}).Should(Succeed())
	// The API is not looked up again for each reconcile.
	expectNoOpReconcile(t, mc)
	containers := deploymentOf(t, mc).Spec.Template.Spec.Containers
	g.Expect(containers).To(HaveLen(2))
	g.Expect(containers[1].Image).To(Equal(resources.DefaultExporterImage))
	svc := &corev1.Service{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), svc)).To(Succeed())
	g.Expect(svc.Spec.Ports).To(ContainElement(HaveField("Port", int32(resources.MetricsPort))))

	// Turning it off removes the sidecar and the condition.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Monitoring.Enabled = false })
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		g.Expect(meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionMonitoringReady)).To(BeNil())
	}).Should(Succeed())
	g.Eventually(func() int { return len(deploymentOf(t, mc).Spec.Template.Spec.Containers) }).Should(Equal(1))
}
