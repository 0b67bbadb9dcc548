package simcluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// nodeAnnotation marks the nodes kwok manages.
const nodeAnnotation = "kwok.x-k8s.io/node"

// zones spread the fake nodes over zones, as in a real multi-zone cluster.
var zones = []string{"zone-a", "zone-b", "zone-c"}

// NodeName returns the name of the i-th fake node.
func NodeName(i int) string { return fmt.Sprintf("kwok-node-%d", i) }

// PodsPerNode is how many pods a fake node holds.
const PodsPerNode = 1000

// createNodes creates n fake nodes for kwok to manage. Each is large enough to
// hold PodsPerNode pods.
func createNodes(ctx context.Context, clientset kubernetes.Interface, n int) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("1000"),
		corev1.ResourceMemory: resource.MustParse("4Ti"),
		corev1.ResourcePods:   *resource.NewQuantity(PodsPerNode, resource.DecimalSI),
	}
	for i := range n {
		name := NodeName(i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{nodeAnnotation: "fake"},
				Labels: map[string]string{
					"kubernetes.io/hostname":           name,
					"kubernetes.io/os":                 "linux",
					"kubernetes.io/arch":               "amd64",
					"node.kubernetes.io/instance-type": "kwok",
					"topology.kubernetes.io/zone":      zones[i%len(zones)],
					"type":                             "kwok",
				},
			},
			Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
		}
		if _, err := clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to create node %s: %w", name, err)
		}
	}
	return nil
}

// nodesReady reports whether the n fake nodes are Ready and carry no taint that
// keeps pods away (the not-ready taint goes once the node is Ready).
func nodesReady(ctx context.Context, clientset kubernetes.Interface, n int) (bool, error) {
	for i := range n {
		node, err := clientset.CoreV1().Nodes().Get(ctx, NodeName(i), metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ready := false
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		for _, taint := range node.Spec.Taints {
			if taint.Effect == corev1.TaintEffectNoSchedule || taint.Effect == corev1.TaintEffectNoExecute {
				ready = false
			}
		}
		if !ready {
			return false, nil
		}
	}
	return true, nil
}
