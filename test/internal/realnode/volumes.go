package realnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"example.com/memcached-operator/test/internal/simcluster"
)

// StorageClassName names the node's default StorageClass: local volumes,
// directories of the node made beforehand. Unlike the host-path volumes of
// the simulated cluster, they take the pod's fsGroup, as the volumes of a
// CSI driver do, so a non-root pod may write to them.
const StorageClassName = "local"

// volumes is how many local volumes the node offers. A volume is used once:
// a claim deleted leaves its volume Released.
const volumes = 40

// createVolumes makes the node's local volumes and their StorageClass the
// cluster's default, in place of the simulated cluster's.
func (n *Node) createVolumes(ctx context.Context, clientset kubernetes.Interface) error {
	standard, err := clientset.StorageV1().StorageClasses().Get(ctx, simcluster.StorageClassName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("failed to get the StorageClass %s: %w", simcluster.StorageClassName, err)
	}
	delete(standard.Annotations, "storageclass.kubernetes.io/is-default-class")
	if _, err := clientset.StorageV1().StorageClasses().Update(ctx, standard, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("failed to make %s not the default StorageClass: %w", standard.Name, err)
	}
	class := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: StorageClassName,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       "kubernetes.io/no-provisioner",
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimRetain),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
	if _, err := clientset.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("failed to create the StorageClass %s: %w", StorageClassName, err)
	}
	for i := range volumes {
		dir := filepath.Join(n.dir, "volumes", fmt.Sprintf("local-%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("local-%d", i)},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              StorageClassName,
				PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{Name}}},
				}}}},
			},
		}
		if _, err := clientset.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("failed to create the volume %s: %w", pv.Name, err)
		}
	}
	return nil
}
