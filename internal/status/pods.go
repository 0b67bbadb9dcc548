package status

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/memcached-operator/internal/resources"
)

// IsReady reports whether pod is ready: its Ready condition is True.
func IsReady(pod *corev1.Pod) bool {
	c := podCondition(pod, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

// activePods returns the pods that are not being deleted, sorted by name.
func activePods(pods []corev1.Pod) []corev1.Pod {
	var active []corev1.Pod
	for i := range pods {
		if pods[i].DeletionTimestamp == nil {
			active = append(active, pods[i])
		}
	}
	slices.SortFunc(active, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return active
}

// controllerKind returns the kind of the controller of pod, "" if none.
func controllerKind(pod *corev1.Pod) string {
	if owner := metav1.GetControllerOfNoCopy(pod); owner != nil {
		return owner.Kind
	}
	return ""
}

// ordinal returns the ordinal of a StatefulSet pod named <set>-<ordinal>, -1
// for another name.
func ordinal(set, pod string) int {
	rest, ok := strings.CutPrefix(pod, set+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return -1
	}
	return n
}

// runsTemplate reports whether pod runs the pod template whose digest is
// hash, as the workload's TemplateHashAnnotation gives it.
func runsTemplate(pod *corev1.Pod, hash string) bool {
	return hash != "" && pod.Annotations[resources.TemplateHashAnnotation] == hash
}

// failingReasons are the reasons of a waiting container that will not go
// away by waiting.
var failingReasons = map[string]bool{
	"CrashLoopBackOff":           true,
	"ImagePullBackOff":           true,
	"ErrImagePull":               true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
}

// PodProblem returns a reason and message when pod cannot run: it cannot be
// scheduled, or a container of it keeps failing. It returns "" otherwise.
func PodProblem(pod *corev1.Pod) (reason, message string) {
	if c := podCondition(pod, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse &&
		c.Reason == corev1.PodReasonUnschedulable {
		return ReasonPodUnschedulable, "Pod " + pod.Name + " cannot be scheduled: " + c.Message
	}
	statuses := slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses)
	for _, s := range statuses {
		if w := s.State.Waiting; w != nil && failingReasons[w.Reason] {
			message := "Pod " + pod.Name + ", container " + s.Name + ": " + w.Reason
			if w.Message != "" {
				message += ": " + w.Message
			}
			return ReasonPodFailing, message
		}
	}
	return "", ""
}
