package memcached

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// extstoreCase is a spec with extstore and why, if at all, it is refused.
type extstoreCase struct {
	name   string
	spec   cachev1alpha1.MemcachedSpec
	refuse string // a part of the message; "" when accepted
}

// statefulExtstore returns a StatefulSet spec with extstore, changed by mutate.
func statefulExtstore(mutate func(*cachev1alpha1.MemcachedSpec)) cachev1alpha1.MemcachedSpec {
	s := cachev1alpha1.MemcachedSpec{Workload: cachev1alpha1.WorkloadStatefulSet,
		Extstore: &cachev1alpha1.ExtstoreSpec{Enabled: true}}
	mutate(&s)
	return s
}

// extstoreCases are the specs with extstore the Go check and admission must
// agree on, at the edges of what memcached accepts.
var extstoreCases = []extstoreCase{
	{"defaults", statefulExtstore(func(*cachev1alpha1.MemcachedSpec) {}), ""},
	{"Loki's item size", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.MemoryMB = 4096; s.MaxItemSizeKB = 2048 }), ""},
	{"off with a Deployment", cachev1alpha1.MemcachedSpec{Extstore: &cachev1alpha1.ExtstoreSpec{Size: "1Mi"}}, ""},
	{"off, with a size in G", cachev1alpha1.MemcachedSpec{Extstore: &cachev1alpha1.ExtstoreSpec{Size: "1G"}},
		"extstore.size must be a whole number"},
	{"Deployment", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Workload = cachev1alpha1.WorkloadDeployment }),
		"extstore needs workload: StatefulSet"},
	{"warm restart", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) {
		s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
	}), "extstore cannot be combined with warmRestart"},
	{"items as large as the write buffers", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) {
		s.MemoryMB = 256
		s.MaxItemSizeKB = 8192
		s.Extstore.WriteBufferMB = 8
	}), ""},
	{"items larger than the write buffers", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) {
		s.MemoryMB = 256
		s.MaxItemSizeKB = 8193
		s.Extstore.WriteBufferMB = 8
	}), "maxItemSizeKB may be at most extstore.writeBufferMB * 1024"},
	{"the smallest volume", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "72Mi" }), ""},
	{"a volume of no page", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "71Mi" }),
		"extstore.size is too small"},
	{"the largest volume", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "4551Gi" }), ""},
	{"a volume of too many pages", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "4552Gi" }),
		"extstore.size is too large"},
	{"5Ti", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "5Ti" }), "extstore.size is too large"},
	{"a size in G", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "10G" }), "extstore.size must be a whole number"},
	{"a size with a sign", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "+10Gi" }), "extstore.size must be a whole number"},
	{"a decimal size", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.Size = "1.5Gi" }), "extstore.size must be a whole number"},
	{"a write buffer that does not divide a page", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.WriteBufferMB = 3 }),
		"writeBufferMB"},
	{"a write buffer larger than a page", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.Extstore.WriteBufferMB = 128 }),
		"writeBufferMB"},
	{"tuned", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) {
		s.Extstore.IOThreads, s.Extstore.ItemSizeBytes, s.Extstore.ItemAgeSeconds = 4, 1024, ptr.To[int32](60)
		s.Extstore.RecacheRate, s.Extstore.FreeMemoryPercent = ptr.To[int32](2000), ptr.To[int32](1)
	}), ""},
	{"a memory limit without compaction's read buffer", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) {
		s.Resources = &cachev1alpha1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("325Mi")}}
	}), "too small for memoryMB"},
	{"a memory limit with the write buffers and compaction's read buffer", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) {
		s.Resources = &cachev1alpha1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("326Mi")}}
	}), ""},
	{"extstore options in extraArgs", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) {
		s.ExtraArgs = []string{"-o", "ext_page_size=32,ext_path=/tmp/f:1g"}
	}), "ext_page_size may not be set: extstore is set by spec.extstore"},
	{"the free memory ratio in extraArgs", statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) {
		s.ExtraArgs = []string{"-o", "slab_automove_freeratio=0.5"}
	}), "it is set by spec.extstore.freeMemoryPercent"},
}

// goExtstoreVerdict is what the operator's checks say about spec.
func goExtstoreVerdict(spec *cachev1alpha1.MemcachedSpec) error {
	for _, check := range []func(*cachev1alpha1.MemcachedSpec) error{CheckExtraArgs, CheckMemoryLimit, CheckExtstore} {
		if err := check(spec); err != nil {
			return err
		}
	}
	return nil
}

func TestCheckExtstore(t *testing.T) {
	for _, tc := range extstoreCases {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			err := goExtstoreVerdict(&spec)
			switch {
			case tc.refuse == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.refuse != "" && err == nil:
				t.Errorf("accepted, want %q", tc.refuse)
			case err != nil && !strings.Contains(err.Error(), tc.refuse):
				t.Errorf("refused with %v, want %q", err, tc.refuse)
			}
		})
	}
}

// TestExtstoreAdmissionAgreesWithTheOperator sends each extstore case to the
// API server and checks it refuses exactly what CheckExtstore refuses, for
// the same reason.
func TestExtstoreAdmissionAgreesWithTheOperator(t *testing.T) {
	c := admissionClient(t)
	for i, tc := range extstoreCases {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			refusal, err := admit(t.Context(), c, fmt.Sprintf("extstore-%d", i), obj)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.refuse == "" && refusal != nil:
				t.Errorf("admission refuses it: %v", refusal)
			case tc.refuse != "" && refusal == nil:
				t.Errorf("admitted, want %q", tc.refuse)
			case refusal != nil && !strings.Contains(refusal.Error(), tc.refuse):
				t.Errorf("admission refuses it with %v, want %q", refusal, tc.refuse)
			}
		})
	}
}

func TestExtstoreArgsAndMemory(t *testing.T) {
	spec := statefulExtstore(func(s *cachev1alpha1.MemcachedSpec) { s.MemoryMB = 1024; s.Extstore.Size = "100Gi" })
	args := strings.Join(Args(&spec), " ")
	want := "-o ext_path=/var/lib/memcached-extstore/extstore:92160m,ext_wbuf_size=32,ext_threads=10,ext_item_size=512," +
		"ext_max_sleep=10000,ext_recache_rate=0,slab_automove_freeratio=0.10"
	if !strings.Contains(args, want) {
		t.Errorf("Args = %s, want %s", args, want)
	}
	// 1024 + 102 + 32 + 6 x 32 write buffers + 32 to compact the file.
	if got := MemoryLimit(&spec); got.String() != "1382Mi" {
		t.Errorf("MemoryLimit = %s, want 1382Mi", got.String())
	}
	spec.Extstore.Enabled = false
	if got := MemoryLimit(&spec); got.String() != "1158Mi" || strings.Contains(strings.Join(Args(&spec), " "), "ext_") {
		t.Errorf("with extstore off, MemoryLimit = %s and Args = %q", got.String(), Args(&spec))
	}
	if got := ExtstoreClaimName(&spec); got != "extstore-100gi" {
		t.Errorf("ExtstoreClaimName = %s", got)
	}
}

func TestExtstoreClaimSizeMBReversesTheClaimName(t *testing.T) {
	for _, size := range []string{"72Mi", "100Mi", "1Gi", "10Gi", "4551Gi", "1Ti", "3Ti"} {
		spec := &cachev1alpha1.MemcachedSpec{Extstore: &cachev1alpha1.ExtstoreSpec{Size: size}}
		volume := ExtstoreVolumeSize(spec)
		if got := ExtstoreClaimSizeMB(ExtstoreClaimName(spec)); got != volume.Value()>>20 {
			t.Errorf("%s: the claim %s is named after %d MiB, want %d", size, ExtstoreClaimName(spec), got, volume.Value()>>20)
		}
	}
	for _, claim := range []string{"memory-file", "extstore-", "extstore-gi", "extstore-10", "extstore-10kb", "extstore-x0gi"} {
		if got := ExtstoreClaimSizeMB(claim); got != 0 {
			t.Errorf("%s: %d MiB, want 0", claim, got)
		}
	}
}
