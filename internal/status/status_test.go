package status

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(name string, deleting bool) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if deleting {
		p.DeletionTimestamp = &metav1.Time{}
	}
	return p
}

func TestNodes(t *testing.T) {
	tests := []struct {
		name string
		pods []corev1.Pod
		want []string
	}{
		{name: "no pods", pods: nil, want: nil},
		{name: "sorted by name", pods: []corev1.Pod{pod("mc-c", false), pod("mc-a", false), pod("mc-b", false)}, want: []string{"mc-a", "mc-b", "mc-c"}},
		{name: "pods being deleted left out", pods: []corev1.Pod{pod("mc-b", true), pod("mc-a", false)}, want: []string{"mc-a"}},
		{name: "only pods being deleted", pods: []corev1.Pod{pod("mc-a", true)}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Nodes(tt.pods); !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("Nodes() = %q, want %q", got, tt.want)
			}
		})
	}
}
