package status

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/internal/resources"
)

// StableName returns the DNS name and port of the StatefulSet pod of mc with
// the given ordinal, under its headless Service.
func StableName(mc *cachev1alpha1.Memcached, ordinal int) string {
	host := fmt.Sprintf("%s-%d.%s.%s.svc", mc.Name, ordinal, resources.HeadlessServiceName(mc), mc.Namespace)
	return net.JoinHostPort(host, strconv.Itoa(memcached.Port))
}

// PlanServers plans the servers of mc: the server list it publishes now,
// given what was observed, and what the workload must run for it. The plan is
// desired state: resources.Build renders it, Compute reports it.
//
// With workload StatefulSet, the list is the stable names of the pods in
// ordinal order. It changes only at its end, so that clients that hash keys
// over it (ketama, jump hash) move as few keys as can be: a pod that
// restarts keeps its place; a scale-up adds each new pod once it and those
// before it are ready; a scale-down removes the last pods from the list
// first, and removes the pods spec.scaleDownDrainSeconds later.
//
// With workload Deployment, the list is the address of every ready pod, in
// the order of the pods' names.
//
// While a switch from one workload to the other is under way, the list of the
// previous workload stays until the new one is ready, then changes at once.
func PlanServers(mc *cachev1alpha1.Memcached, observed Observed, now metav1.Time) resources.Servers {
	size := mc.Spec.Size
	previous := mc.Status.ServerList
	if mc.Spec.GetWorkload() != cachev1alpha1.WorkloadStatefulSet {
		s := resources.Servers{RetirePreviousWorkload: deploymentReady(observed.Deployment, size)}
		if observed.StatefulSet != nil && !s.RetirePreviousWorkload {
			s.List = previous
		} else {
			s.List = readyAddresses(observed.Pods)
		}
		return s
	}

	s := resources.Servers{RetirePreviousWorkload: statefulSetReady(observed.StatefulSet, size)}
	published := stablePrefix(mc, previous)
	if switchingFromDeployment(observed) && !s.RetirePreviousWorkload {
		// Switching from a Deployment: its pods' list stays until the
		// StatefulSet is ready.
		s.List = readyAddresses(observed.Pods)
		s.StatefulSetReplicas = size
		return s
	}

	ready := map[int]bool{}
	for _, pod := range activePods(observed.Pods) {
		if i := ordinal(mc.Name, pod.Name); i >= 0 && IsReady(&pod) {
			ready[i] = true
		}
	}
	members := min(published, int(size))
	for members < int(size) && ready[members] {
		members++
	}
	for i := range members {
		s.List = append(s.List, StableName(mc, i))
	}

	// Pods removed from the list keep running for the drain period.
	running := int32(0)
	if observed.StatefulSet != nil {
		running = ptr.Deref(observed.StatefulSet.Spec.Replicas, 0)
	}
	drain := time.Duration(ptr.Deref(mc.Spec.ScaleDownDrainSeconds, 0)) * time.Second
	s.DrainingSince = mc.Status.DrainingSince
	if members < published {
		since := now
		if drain > 0 {
			// The API server keeps the time to the second: the drain counts
			// from the next whole second, so that it lasts all its seconds
			// once the time is read back.
			since = metav1.NewTime(now.Add(time.Second - 1).Truncate(time.Second))
		}
		s.DrainingSince = &since
	}
	s.StatefulSetReplicas = size
	if s.DrainingSince != nil {
		left := drain - now.Sub(s.DrainingSince.Time)
		if left <= 0 || running <= size {
			s.DrainingSince = nil
		} else {
			s.StatefulSetReplicas = running
			s.RequeueAfter = left
		}
	}
	return s
}

// switchingFromDeployment reports whether a StatefulSet Memcached is
// switching from a Deployment: one exists, and the StatefulSet is not older.
// An older StatefulSet is one that served until a switch to a Deployment was
// undone. The previous server list cannot tell: it may be empty.
func switchingFromDeployment(observed Observed) bool {
	d, s := observed.Deployment, observed.StatefulSet
	return d != nil && (s == nil || !s.CreationTimestamp.Before(&d.CreationTimestamp))
}

// stablePrefix returns how many servers at the start of list are the stable
// names of mc's StatefulSet pods 0, 1, ...
func stablePrefix(mc *cachev1alpha1.Memcached, list []string) int {
	n := 0
	for n < len(list) && list[n] == StableName(mc, n) {
		n++
	}
	return n
}

// readyAddresses returns ip:port of the ready pods, not being deleted, of a
// Deployment (not of a StatefulSet), in the order of their names.
func readyAddresses(pods []corev1.Pod) []string {
	var list []string
	for _, pod := range activePods(pods) {
		if ip := pod.Status.PodIP; ip != "" && IsReady(&pod) && controllerKind(&pod) != "StatefulSet" {
			list = append(list, net.JoinHostPort(ip, strconv.Itoa(memcached.Port)))
		}
	}
	return list
}

// deploymentReady reports whether d runs size available pods of its
// current template, and no other.
func deploymentReady(d *appsv1.Deployment, size int32) bool {
	return d != nil && d.Status.ObservedGeneration >= d.Generation &&
		d.Status.UpdatedReplicas >= size && d.Status.AvailableReplicas >= size && d.Status.Replicas == d.Status.UpdatedReplicas
}

// statefulSetReady reports whether s runs size available pods of its
// current template.
func statefulSetReady(s *appsv1.StatefulSet, size int32) bool {
	return s != nil && s.Status.ObservedGeneration >= s.Generation &&
		s.Status.UpdatedReplicas >= size && s.Status.AvailableReplicas >= size
}

// PodWithoutItsVolume returns the pod of the StatefulSet of mc to delete so
// that the StatefulSet recreates it with the volume of its claim template
// claim (resources.ClaimTemplate), nil when there is none or when it is not
// yet time. A StatefulSet recreated
// with a claim template it did not have (warm restart or extstore turned on,
// or extstore's size changed) adopts the pods of the previous one, which lack
// that volume, and its controller cannot add a volume to a running pod: it
// stops at the first such pod, in ordinal order, and never replaces it nor
// creates a pod after it. The pods are replaced one at a time, the lowest
// ordinal first (the one the controller stops at), each only once the
// StatefulSet runs all of its replicas, ready, none of them going: a cache
// never loses more than one server to it.
func PodWithoutItsVolume(mc *cachev1alpha1.Memcached, claim string, observed Observed) *corev1.Pod {
	set := observed.StatefulSet
	if claim == "" || set == nil || !slices.ContainsFunc(set.Spec.VolumeClaimTemplates,
		func(c corev1.PersistentVolumeClaim) bool { return c.Name == claim }) {
		// Not yet the StatefulSet that has the claim template.
		return nil
	}
	var lacking *corev1.Pod
	running := int32(0)
	for i := range observed.Pods {
		pod := &observed.Pods[i]
		if !metav1.IsControlledBy(pod, set) {
			continue
		}
		if pod.DeletionTimestamp != nil || !IsReady(pod) {
			return nil
		}
		running++
		if !hasClaimVolume(pod, claim) && (lacking == nil || ordinal(mc.Name, pod.Name) < ordinal(mc.Name, lacking.Name)) {
			lacking = pod
		}
	}
	if running < ptr.Deref(set.Spec.Replicas, 0) {
		return nil
	}
	return lacking
}

// hasClaimVolume reports whether pod has the volume of the claim template
// claim, a PersistentVolumeClaim <claim>-<pod name>.
func hasClaimVolume(pod *corev1.Pod, claim string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == claim && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim+"-"+pod.Name {
			return true
		}
	}
	return false
}
