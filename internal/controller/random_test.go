package controller

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/status"
)

// randomSpecs is how many random Memcacheds TestRandomSpecsAreRefusedOrConverge
// submits.
const randomSpecs = 300

// specErrorReasons are the reasons of a Degraded condition that tells the
// user what to change in the spec or in the Secrets it names.
var specErrorReasons = []string{status.ReasonInvalidSpec, status.ReasonSecretNotFound, status.ReasonInvalidSecret}

// TestRandomSpecsAreRefusedOrConverge submits random Memcacheds, made of
// valid and invalid values of every field: each is refused at admission with
// a message, or the operator applies its objects, or it tells what is wrong
// with the spec in a Degraded condition. None may leave the operator unable to
// apply what it built. RANDOM_SPECS_SEED replays a run.
func TestRandomSpecsAreRefusedOrConverge(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	rng := seededRand(t, "RANDOM_SPECS_SEED")

	createSecret(t, ns, "users", corev1.SecretTypeOpaque, map[string][]byte{"alice": []byte("secret")})
	createSecret(t, ns, "empty", corev1.SecretTypeOpaque, map[string][]byte{})
	createSecret(t, ns, "tls", corev1.SecretTypeTLS, map[string][]byte{
		corev1.TLSCertKey: []byte("not a certificate"), corev1.TLSPrivateKeyKey: []byte("not a key")})

	var admitted []*unstructured.Unstructured
	refused := 0
	for i := range randomSpecs {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
			"metadata": map[string]any{"namespace": ns, "name": randomName(rng, i)},
			"spec":     randomSpec(rng),
		}}
		err := k8sClient.Create(t.Context(), obj)
		if err == nil {
			admitted = append(admitted, obj)
			continue
		}
		refused++
		g.Expect(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)).To(BeTrue(),
			"%s is refused for another reason than its content: %v", describe(obj), err)
		g.Expect(err.Error()).To(MatchRegexp(`\b(spec|metadata)\b`), "%s is refused without saying which field: %v", describe(obj), err)
	}
	t.Logf("Of %d random Memcacheds, %d were refused at admission and %d admitted", randomSpecs, refused, len(admitted))
	g.Expect(refused).To(BeNumerically(">", randomSpecs/10), "too few random specs were invalid to test admission")
	g.Expect(len(admitted)).To(BeNumerically(">", randomSpecs/10), "too few random specs were valid to test the operator")

	var converged, degraded int
	for _, obj := range admitted {
		g.Eventually(func(g Gomega) {
			mc := &cachev1alpha1.Memcached{}
			g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(obj), mc)).To(Succeed())
			c := meta.FindStatusCondition(mc.Status.Conditions, cachev1alpha1.ConditionDegraded)
			g.Expect(c).NotTo(BeNil(), "%s has no Degraded condition", describe(obj))
			g.Expect(c.ObservedGeneration).To(Equal(mc.Generation), "%s", describe(obj))
			if c.Status == metav1.ConditionTrue {
				g.Expect(specErrorReasons).To(ContainElement(c.Reason), "%s: %s: %s", describe(obj), c.Reason, c.Message)
				g.Expect(c.Message).NotTo(BeEmpty())
				degraded++
				return
			}
			g.Expect(mc.Status.ObservedGeneration).To(Equal(mc.Generation), "%s", describe(obj))
			var workload client.Object = &appsv1.Deployment{}
			if mc.Spec.Workload == cachev1alpha1.WorkloadStatefulSet {
				workload = &appsv1.StatefulSet{}
			}
			g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), workload)).To(Succeed(),
				"%s converged without its workload", describe(obj))
			converged++
		}).Should(Succeed())
	}
	t.Logf("Of the %d admitted, the operator applied %d and told what is wrong with %d in a Degraded condition",
		len(admitted), converged, degraded)
}

// seededRand returns a random source seeded from the environment variable
// env, or from the time when it is not set, and logs the seed so that the
// run can be replayed.
func seededRand(t *testing.T, env string) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(env); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", env, err)
		}
	}
	t.Logf("Seed %d (%s=%d replays this run)", seed, env, seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// describe returns the name and spec of obj, for messages.
func describe(obj *unstructured.Unstructured) string {
	spec, _ := json.Marshal(obj.Object["spec"])
	return fmt.Sprintf("Memcached %s %s", obj.GetName(), spec)
}

// randomName returns a valid name for the i-th Memcached, or now and then
// one that is not.
func randomName(rng *rand.Rand, i int) string {
	switch rng.IntN(20) {
	case 0:
		return fmt.Sprintf("r%d-%s", i, strings.Repeat("x", 50+rng.IntN(10)))
	case 1:
		return fmt.Sprintf("%d-starts-with-a-digit", i)
	case 2:
		return fmt.Sprintf("r%d.with.dots", i)
	default:
		return fmt.Sprintf("r%d-%s", i, strings.Repeat("a", rng.IntN(45)))
	}
}

// choose returns one of valid at random, or now and then one of invalid.
func choose(rng *rand.Rand, valid, invalid []any) any {
	if len(invalid) > 0 && rng.IntN(8) == 0 {
		return invalid[rng.IntN(len(invalid))]
	}
	return valid[rng.IntN(len(valid))]
}

// randomSpec returns a Memcached spec that sets a few fields at random, to
// values mostly valid.
func randomSpec(rng *rand.Rand) map[string]any {
	list := func(values ...any) []any { return values }
	seconds := func() any { return choose(rng, list(0, 1, 5, 30, 59, 60, 61, 120, 3600), list(-1, 1<<31-1)) }
	quantity := func() any {
		return choose(rng, list("64Mi", "1Gi", "4Gi", "100m", "2", 1, "1e3", "0.5", "0"), list("-1Gi", "lots", "1e-1000000000", "64MiB", ""))
	}
	intOrPercent := func() any { return choose(rng, list(0, 1, 2, "0%", "50%", "100%"), list(-1, "150%", "half")) }
	fields := map[string]func() any{
		"size":                          func() any { return choose(rng, list(0, 1, 2, 3, 5, rng.IntN(50)), list(-1)) },
		"workload":                      func() any { return choose(rng, list("Deployment", "StatefulSet"), list("DaemonSet", "")) },
		"memoryMB":                      func() any { return choose(rng, list(16, 64, 1024, 4096), list(0, -5, 1<<20, 1<<31-1)) },
		"maxConnections":                func() any { return choose(rng, list(1, 1024, 65536), list(0, -1, 1<<31-1)) },
		"threads":                       func() any { return choose(rng, list(1, 4, 16, 64), list(0, -1, 1<<20)) },
		"maxItemSizeKB":                 func() any { return choose(rng, list(512, 1024, 1536, 2048), list(0, -1, 1, 1000, 1025, 1<<30)) },
		"verbosity":                     func() any { return choose(rng, list(0, 1, 2), list(3, -1)) },
		"minReadySeconds":               seconds,
		"scaleDownDrainSeconds":         seconds,
		"preStopDelaySeconds":           seconds,
		"terminationGracePeriodSeconds": seconds,
		"image": func() any {
			return choose(rng, list("memcached:1.6.39", "registry.example.com/cache/memcached@sha256:"+strings.Repeat("a", 64)),
				list("", "not an image"))
		},
		"priorityClassName": func() any { return choose(rng, list("high"), list("Not_A_Name")) },
		"extraArgs": func() any {
			valid := [][]any{{"-R", "20"}, {"-M"}, {"--max-reqs-per-event=5"}, {"-f", "1.25"}, {"-o", "lru_crawler,hashpower=20"},
				{"-B", "ascii"}, {"-C"}, {"-D", ":"}, {"--listen-backlog=1024"}}
			invalid := [][]any{{"-p", "11211"}, {"-U", "1"}, {"--por=1"}, {"-o", "ssl_verify_mode=0"}, {"-vv"}, {"-l", "0.0.0.0"},
				{"-t", "8"}, {""}, {" "}, {"-R"}, {"-B", "binary"}}
			count := rng.IntN(3)
			args := make([]any, 0, 2*count)
			for range count {
				args = append(args, choose(rng, list(valid[rng.IntN(len(valid))]), list(invalid[rng.IntN(len(invalid))])).([]any)...)
			}
			return args
		},
		"resources": func() any {
			resources := map[string]any{}
			for _, key := range []string{"limits", "requests"} {
				if rng.IntN(2) == 0 {
					resources[key] = map[string]any{choose(rng, list("memory", "cpu"), nil).(string): quantity()}
				}
			}
			return resources
		},
		"podDisruptionBudget": func() any {
			budget := map[string]any{}
			switch rng.IntN(4) {
			case 0:
				budget["enabled"] = rng.IntN(2) == 0
			case 1:
				budget["maxUnavailable"] = intOrPercent()
			case 2:
				budget["minAvailable"] = intOrPercent()
			default:
				budget["maxUnavailable"], budget["minAvailable"] = intOrPercent(), intOrPercent()
			}
			return budget
		},
		"auth": func() any {
			return choose(rng, list(map[string]any{"secretName": "users"}, map[string]any{"secretName": "missing"},
				map[string]any{"secretName": "empty"}), list(map[string]any{"secretName": "a/b"}, map[string]any{}))
		},
		"tls": func() any {
			return choose(rng, list(map[string]any{"secretName": "tls"}, map[string]any{"secretName": "tls", "clientCASecretName": "users"},
				map[string]any{"secretName": "missing"}), list(map[string]any{"secretName": "Cert"}))
		},
		"monitoring": func() any {
			return choose(rng, list(map[string]any{"enabled": rng.IntN(2) == 0},
				map[string]any{"enabled": true, "tls": map[string]any{"clientCertificateSecretName": "tls"}},
				map[string]any{"enabled": true, "tls": map[string]any{"clientCertificateSecretName": "missing"}}),
				list(map[string]any{"enabled": true, "tls": map[string]any{}}))
		},
		"warmRestart":   func() any { return map[string]any{"enabled": rng.IntN(2) == 0} },
		"networkPolicy": func() any { return choose(rng, list(map[string]any{}, map[string]any{"allowedFrom": []any{}}), nil) },
		"podLabels": func() any {
			return choose(rng, list(map[string]any{"team": "payments"}, map[string]any{"example.com/tier": "cache"}),
				list(map[string]any{"app.kubernetes.io/instance": "other"}, map[string]any{"bad key!": "x"}, map[string]any{"team": "not a value"}))
		},
		"podAnnotations": func() any {
			return choose(rng, list(map[string]any{"example.com/note": "any text at all"}), list(map[string]any{"bad key!": "x"}))
		},
		"nodeSelector": func() any {
			return choose(rng, list(map[string]any{"kubernetes.io/os": "linux"}), list(map[string]any{"kubernetes.io/os": "linux or not"}))
		},
	}
	spec := map[string]any{}
	for name, value := range fields {
		if rng.IntN(5) == 0 {
			spec[name] = value()
		}
	}
	return spec
}
