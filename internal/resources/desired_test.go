package resources

import (
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func TestBuildAppliesWhatTheSpecAsksFor(t *testing.T) {
	type ref struct{ kind, name string }
	tests := []struct {
		name        string
		mc          *cachev1alpha1.Memcached
		wantApplied []ref
		wantAbsent  []ref
	}{
		{
			name: "the getting-started sample",
			mc:   newMemcached("example-memcached", 3),
			wantApplied: []ref{{"Deployment", "example-memcached"}, {"Service", "example-memcached"},
				{"Service", "example-memcached-headless"}, {"ConfigMap", "example-memcached-servers"},
				{"PodDisruptionBudget", "example-memcached"}},
			wantAbsent: []ref{{"NetworkPolicy", "example-memcached"}, {"NetworkPolicy", "example-memcached-exporter"},
				{"Deployment", "example-memcached-exporter"}, {"Service", "example-memcached-exporter"},
				{"ServiceMonitor", "example-memcached"}, {"PrometheusRule", "example-memcached"}},
		},
		{
			name: "one pod: no budget",
			mc:   newMemcached("one", 1),
			wantApplied: []ref{{"Deployment", "one"}, {"Service", "one"}, {"Service", "one-headless"},
				{"ConfigMap", "one-servers"}},
			wantAbsent: []ref{{"PodDisruptionBudget", "one"}},
		},
		{
			name: "stable identities, monitoring and a network policy",
			mc: withSpec(func(s *cachev1alpha1.MemcachedSpec) {
				s.Workload = cachev1alpha1.WorkloadStatefulSet
				s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
				s.NetworkPolicy = &cachev1alpha1.NetworkPolicySpec{AllowedFrom: []networkingv1.NetworkPolicyPeer{}}
			}),
			wantApplied: []ref{{"StatefulSet", "mc"}, {"Service", "mc"}, {"Service", "mc-headless"},
				{"ConfigMap", "mc-servers"}, {"PodDisruptionBudget", "mc"}, {"NetworkPolicy", "mc"},
				{"NetworkPolicy", "mc-exporter"}, {"Deployment", "mc-exporter"}, {"Service", "mc-exporter"},
				{"ServiceMonitor", "mc"}, {"PrometheusRule", "mc"}},
		},
		{
			name: "monitoring without alerts",
			mc: withSpec(func(s *cachev1alpha1.MemcachedSpec) {
				s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true, Alerts: &cachev1alpha1.AlertsSpec{Enabled: ptr.To(false)}}
			}),
			wantApplied: []ref{{"Deployment", "mc"}, {"Service", "mc"}, {"Service", "mc-headless"},
				{"ConfigMap", "mc-servers"}, {"PodDisruptionBudget", "mc"}, {"Deployment", "mc-exporter"},
				{"Service", "mc-exporter"}, {"ServiceMonitor", "mc"}},
			wantAbsent: []ref{{"PrometheusRule", "mc"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Build(tt.mc, inputsFor(tt.mc))
			var applied, gone []ref
			for _, o := range d.Objects {
				applied = append(applied, ref{o.Kind.Kind, o.GetName()})
				if o.GetNamespace() != tt.mc.Namespace {
					t.Errorf("%s %s is in namespace %q, want %q", o.Kind.Kind, o.GetName(), o.GetNamespace(), tt.mc.Namespace)
				}
				if owners := o.GetOwnerReferences(); len(owners) != 1 || owners[0].UID != tt.mc.UID ||
					!ptr.Deref(owners[0].Controller, false) || !ptr.Deref(owners[0].BlockOwnerDeletion, false) {
					t.Errorf("%s %s has owners %+v, want the Memcached as controller", o.Kind.Kind, o.GetName(), owners)
				}
				if !IsManagedBy(o.GetLabels(), tt.mc.Name) {
					t.Errorf("%s %s has labels %v that do not show it is the Memcached's", o.Kind.Kind, o.GetName(), o.GetLabels())
				}
				if o.GetAnnotations()[AppliedHashAnnotation] == "" {
					t.Errorf("%s %s has no %s", o.Kind.Kind, o.GetName(), AppliedHashAnnotation)
				}
			}
			for _, r := range d.Absent {
				gone = append(gone, ref{r.Kind.Kind, r.Name})
			}
			for _, want := range tt.wantApplied {
				if !slices.Contains(applied, want) {
					t.Errorf("%s %s is not applied; applied: %v", want.kind, want.name, applied)
				}
			}
			if len(applied) != len(tt.wantApplied) {
				t.Errorf("applied %v, want %v", applied, tt.wantApplied)
			}
			for _, want := range tt.wantAbsent {
				if !slices.Contains(gone, want) {
					t.Errorf("%s %s is not deleted; deleted: %v", want.kind, want.name, gone)
				}
			}
		})
	}
}

func TestBuildRetiresThePreviousWorkloadOnlyWhenAsked(t *testing.T) {
	for _, workload := range []cachev1alpha1.WorkloadKind{cachev1alpha1.WorkloadDeployment, cachev1alpha1.WorkloadStatefulSet} {
		mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) { s.Workload = workload })
		current, previous := DeploymentKind, StatefulSetKind
		if workload == cachev1alpha1.WorkloadStatefulSet {
			current, previous = previous, current
		}
		for _, retire := range []bool{false, true} {
			in := inputsFor(mc)
			in.Servers.RetirePreviousWorkload = retire
			d := Build(mc, in)
			if !applies(d, current, "mc") {
				t.Errorf("%s, retire %v: the %s is not applied", workload, retire, current.Kind)
			}
			if applies(d, previous, "mc") {
				t.Errorf("%s, retire %v: the %s is applied", workload, retire, previous.Kind)
			}
			if absent(d, previous, "mc") != retire {
				t.Errorf("%s, retire %v: the %s is deleted: %v", workload, retire, previous.Kind, absent(d, previous, "mc"))
			}
		}
	}
}

func TestAppliedHashFollowsTheContent(t *testing.T) {
	hashes := func(mc *cachev1alpha1.Memcached) map[string]string {
		out := map[string]string{}
		for _, o := range Build(mc, inputsFor(mc)).Objects {
			out[o.Kind.Kind+"/"+o.GetName()] = o.GetAnnotations()[AppliedHashAnnotation]
		}
		return out
	}
	base := hashes(newMemcached("mc", 3))
	if again := hashes(newMemcached("mc", 3)); !equalMaps(base, again) {
		t.Errorf("the same Memcached gives other digests: %v, then %v", base, again)
	}
	scaled := hashes(newMemcached("mc", 4))
	for key, hash := range base {
		changed := scaled[key] != hash
		if wantChanged := key == "Deployment/mc"; changed != wantChanged {
			t.Errorf("scaling from 3 to 4: the digest of %s changed: %v, want %v", key, changed, wantChanged)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDigestDependsOnTheKeyAndTheContents(t *testing.T) {
	a, b := Digest("key", []byte("ab"), []byte("c")), Digest("key", []byte("a"), []byte("bc"))
	if a == b {
		t.Error("different contents give the same digest")
	}
	if Digest("key", []byte("ab"), []byte("c")) != a {
		t.Error("the same contents give different digests")
	}
	if Digest("other key", []byte("ab"), []byte("c")) == a {
		t.Error("another key gives the same digest: someone without the key could test guesses")
	}
}
