package controller

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

func TestAuthSecretIsReadAndRollsPods(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 2)
	converged(t, mc)
	before := deploymentOf(t, mc)

	// A missing Secret degrades the Memcached and leaves its pods alone.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"} })
	expectDegraded(t, mc, status.ReasonSecretNotFound, "Secret users named by spec.auth.secretName does not exist in namespace "+ns)
	expectUnchanged(t, before)

	// Creating it is noticed: the pods render the auth file from it
	// themselves, and roll.
	users := createSecret(t, ns, "users", corev1.SecretTypeOpaque, map[string][]byte{"app": []byte("first")})
	g.Eventually(podAnnotation(t, mc, resources.AuthDigestAnnotation)).ShouldNot(BeEmpty())
	firstDigest := podAnnotation(t, mc, resources.AuthDigestAnnotation)(g)
	converged(t, mc)
	pod := deploymentOf(t, mc).Spec.Template.Spec
	g.Expect(pod.Containers[0].Args).To(ContainElements("-Y", memcached.AuthDir+"/"+memcached.AuthFileKey))
	g.Expect(pod.Containers[0].Args).NotTo(ContainElement(ContainSubstring("first")), "a password is in the arguments")
	g.Expect(pod.Containers[0].Env).To(BeEmpty())
	g.Expect(pod.InitContainers).To(HaveLen(1))
	g.Expect(pod.Volumes).To(ContainElement(HaveField("Secret.SecretName", "users")))
	g.Expect(meta.IsStatusConditionFalse(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	// The operator writes no Secret of its own.
	secrets := &corev1.SecretList{}
	g.Expect(k8sClient.List(t.Context(), secrets, client.InNamespace(ns))).To(Succeed())
	g.Expect(secrets.Items).To(HaveLen(1))

	// The digest is keyed: it is not a plain hash of the file.
	g.Expect(firstDigest).NotTo(Equal(resources.Digest("", []byte("app:first\n"))))

	// With the Secrets unchanged, a reconcile reads them from memory: no request.
	expectNoOpReconcile(t, mc)

	// Changing the Secret rolls the pods again.
	updateSecretData(t, users, map[string][]byte{"app": []byte("second"), "ops": []byte("third")})
	g.Eventually(podAnnotation(t, mc, resources.AuthDigestAnnotation)).ShouldNot(Equal(firstDigest))

	// A pair memcached cannot read is refused, naming the user only.
	stable := deploymentOf(t, mc)
	updateSecretData(t, users, map[string][]byte{"app": []byte("has space")})
	expectDegraded(t, mc, status.ReasonInvalidSecret, `the password of "app" has whitespace`)
	g.Expect(meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionDegraded).Message).
		NotTo(ContainSubstring("has space"))
	expectUnchanged(t, stable)

	// Turning auth off removes the init container and the digest.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Auth = nil })
	g.Eventually(podAnnotation(t, mc, resources.AuthDigestAnnotation)).Should(BeEmpty())
	g.Expect(deploymentOf(t, mc).Spec.Template.Spec.InitContainers).To(BeEmpty())
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
	expectUnchanged(t, before)

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
	g.Eventually(podAnnotation(t, mc, resources.TLSDigestAnnotation)).ShouldNot(BeEmpty())
	firstDigest := podAnnotation(t, mc, resources.TLSDigestAnnotation)(g)
	converged(t, mc)
	args := deploymentOf(t, mc).Spec.Template.Spec.Containers[0].Args
	g.Expect(args).To(ContainElements("-Z", ContainSubstring("ssl_verify_mode=2")))

	// A renewed certificate rolls the pods.
	cert, key, err = certutil.GenerateSelfSignedCertKey("cache-renewed", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	updateSecretData(t, serving, map[string][]byte{"tls.crt": cert, "tls.key": key})
	g.Eventually(podAnnotation(t, mc, resources.TLSDigestAnnotation)).ShouldNot(Equal(firstDigest))

	// A certificate that does not match its key is refused.
	_, otherKey, err := certutil.GenerateSelfSignedCertKey("other", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	updateSecretData(t, serving, map[string][]byte{"tls.crt": cert, "tls.key": otherKey})
	expectDegraded(t, mc, status.ReasonInvalidSecret, "has no valid certificate and key")
}

func TestExporterClientCertificateIsCheckedAndRenewalRestartsOnlyTheExporter(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	mc := createMemcached(t, ns, "cache", 1)
	cert, key, err := certutil.GenerateSelfSignedCertKey("cache", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	createSecret(t, ns, "serving", corev1.SecretTypeTLS, map[string][]byte{"tls.crt": cert, "tls.key": key})
	caCert, _, err := certutil.GenerateSelfSignedCertKey("client-ca", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	createSecret(t, ns, "client-ca", corev1.SecretTypeOpaque, map[string][]byte{"ca.crt": caCert})
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.TLS = &cachev1alpha1.TLSSpec{SecretName: "serving", ClientCASecretName: "client-ca"}
	})
	converged(t, mc)
	before := deploymentOf(t, mc)

	// A missing client certificate holds the exporter back, and only it:
	// MonitoringReady says why, the rest of the spec is applied, and the
	// memcached pods are not touched.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) {
		s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true,
			TLS: &cachev1alpha1.MonitoringTLSSpec{ClientCertificateSecretName: "scraper"}}
	})
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
		c := meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionMonitoringReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(status.ReasonSecretNotFound))
		g.Expect(c.Message).To(ContainSubstring("Secret scraper named by spec.monitoring.tls.clientCertificateSecretName does not exist"))
		g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
	}).Should(Succeed())
	g.Expect(apierrors.IsNotFound(k8sClient.Get(t.Context(),
		client.ObjectKey{Namespace: ns, Name: resources.ExporterName(mc)}, &appsv1.Deployment{}))).To(BeTrue(),
		"the exporter was created without its client certificate")
	exporterService := &corev1.Service{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: resources.ExporterName(mc)}, exporterService)).To(Succeed())
	expectUnchanged(t, before)

	// Once it exists, the exporter presents it.
	clientCert, clientKey, err := certutil.GenerateSelfSignedCertKey("scraper", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	scraper := createSecret(t, ns, "scraper", corev1.SecretTypeTLS, map[string][]byte{"tls.crt": clientCert, "tls.key": clientKey})
	exporterDigest := func(g Gomega) string {
		exporter := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: resources.ExporterName(mc)}, exporter)).To(Succeed())
		return exporter.Spec.Template.Annotations[resources.ExporterTLSDigestAnnotation]
	}
	g.Eventually(exporterDigest).ShouldNot(BeEmpty())
	first := exporterDigest(g)
	g.Eventually(func(g Gomega) {
		current := getMemcached(t, g, mc)
		g.Expect(meta.IsStatusConditionFalse(current.Status.Conditions, cachev1alpha1.ConditionDegraded)).To(BeTrue())
		g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
	}).Should(Succeed())
	memcachedPods := deploymentOf(t, mc)

	// A renewed client certificate restarts the exporter, not memcached.
	clientCert, clientKey, err = certutil.GenerateSelfSignedCertKey("scraper-renewed", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	updateSecretData(t, scraper, map[string][]byte{"tls.crt": clientCert, "tls.key": clientKey})
	g.Eventually(exporterDigest).ShouldNot(Equal(first))
	expectUnchanged(t, memcachedPods)

	// A certificate that does not match its key leaves the running exporter
	// as it was, and scaling the cache still works.
	renewed := exporterDigest(g)
	_, otherKey, err := certutil.GenerateSelfSignedCertKey("other", nil, nil)
	g.Expect(err).NotTo(HaveOccurred())
	updateSecretData(t, scraper, map[string][]byte{"tls.crt": clientCert, "tls.key": otherKey})
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Size = 2 })
	g.Eventually(replicasOf(t, mc)).Should(Equal(int32(2)))
	g.Eventually(func(g Gomega) string {
		c := meta.FindStatusCondition(getMemcached(t, g, mc).Status.Conditions, cachev1alpha1.ConditionMonitoringReady)
		g.Expect(c).NotTo(BeNil())
		return c.Reason
	}).Should(Equal(status.ReasonInvalidSecret))
	g.Expect(exporterDigest(g)).To(Equal(renewed))
}

func TestSecretsNoMemcachedNamesAreForgotten(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	users := createSecret(t, ns, "users", corev1.SecretTypeOpaque, map[string][]byte{"app": []byte("pw")})
	mc := createMemcached(t, ns, "cache", 1)
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"} })
	key := types.NamespacedName{Namespace: ns, Name: "users"}
	kept := func() bool {
		reconciler.secrets.mu.Lock()
		defer reconciler.secrets.mu.Unlock()
		_, ok := reconciler.secrets.entries[secretEntryKey{ObjectKey: key, use: authUsers}]
		return ok
	}
	g.Eventually(kept).Should(BeTrue())

	// Once no Memcached names it, the next change of the Secret drops what
	// the operator kept of it.
	patchSpec(t, mc, func(s *cachev1alpha1.MemcachedSpec) { s.Auth = nil })
	converged(t, mc)
	updateSecretData(t, users, map[string][]byte{"app": []byte("pw2")})
	g.Eventually(kept).Should(BeFalse())
}
