// Package invariants checks what must hold of a cluster the operator manages
// once it has settled, whatever happened before: faults, restarts, races.
// The end-to-end tests, the fault suite and the benchmark use it.
package invariants

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
)

// Check returns every way in which the cluster of c differs from what the
// operator must have reached once it has settled:
//
//   - every Memcached has been reconciled at its generation, is Available
//     with spec.size ready pods (unless its size is 0) and is not Degraded;
//   - every object it asks for exists, once, with the Memcached as its
//     controller, and none it no longer asks for is left under its control;
//   - every object labelled as the operator's has a living Memcached as its
//     controller.
//
// Kinds whose API the cluster lacks are skipped.
func Check(ctx context.Context, c client.Client) ([]string, error) {
	var violations []string
	list := &cachev1alpha1.MemcachedList{}
	if err := c.List(ctx, list); err != nil {
		return nil, fmt.Errorf("failed to list Memcacheds: %w", err)
	}
	living := map[types.UID]bool{}
	for i := range list.Items {
		mc := &list.Items[i]
		if mc.DeletionTimestamp != nil {
			continue
		}
		living[mc.UID] = true
		found, err := Memcached(ctx, c, mc)
		if err != nil {
			return nil, err
		}
		violations = append(violations, found...)
	}

	managed := client.MatchingLabels{resources.ManagedByLabel: resources.ManagerName}
	for _, kind := range resources.Kinds {
		objects := &metav1.PartialObjectMetadataList{}
		objects.SetGroupVersionKind(kind.GroupVersion().WithKind(kind.Kind + "List"))
		if err := c.List(ctx, objects, managed); err != nil {
			if isMissingAPI(err) {
				continue
			}
			return nil, fmt.Errorf("failed to list %s: %w", kind.Kind, err)
		}
		for _, obj := range objects.Items {
			if obj.DeletionTimestamp != nil {
				continue
			}
			owner := metav1.GetControllerOfNoCopy(&obj)
			if owner == nil || !living[owner.UID] {
				violations = append(violations, fmt.Sprintf("%s %s/%s has no living Memcached as its controller",
					kind.Kind, obj.Namespace, obj.Name))
			}
		}
	}
	return violations, nil
}

// Memcached returns every way in which mc and the objects it asks for
// differ from what the operator must have reached once it has settled: the
// first two points of Check, for one Memcached.
func Memcached(ctx context.Context, c client.Client, mc *cachev1alpha1.Memcached) ([]string, error) {
	var violations []string
	key := mc.Namespace + "/" + mc.Name
	s := mc.Status
	switch {
	case s.ObservedGeneration != mc.Generation:
		violations = append(violations, fmt.Sprintf("Memcached %s: observedGeneration %d, generation %d", key, s.ObservedGeneration, mc.Generation))
	case mc.Spec.Size > 0 && (!meta.IsStatusConditionTrue(s.Conditions, cachev1alpha1.ConditionAvailable) || s.ReadyReplicas != mc.Spec.Size):
		violations = append(violations, fmt.Sprintf("Memcached %s: %d/%d ready, conditions %s", key, s.ReadyReplicas, mc.Spec.Size, conditions(s.Conditions)))
	case meta.IsStatusConditionTrue(s.Conditions, cachev1alpha1.ConditionDegraded):
		violations = append(violations, fmt.Sprintf("Memcached %s is degraded: %s", key, conditions(s.Conditions)))
	}

	desired := resources.Build(mc, resources.Inputs{Servers: resources.Servers{StatefulSetReplicas: mc.Spec.Size, RetirePreviousWorkload: true}})
	for _, o := range desired.Objects {
		obj, err := get(ctx, c, o.Ref())
		switch {
		case isMissingAPI(err):
		case err != nil:
			return nil, fmt.Errorf("failed to read %s of Memcached %s: %w", o.Ref(), key, err)
		case obj == nil:
			violations = append(violations, fmt.Sprintf("Memcached %s: %s is missing", key, o.Ref()))
		case !metav1.IsControlledBy(obj, mc):
			violations = append(violations, fmt.Sprintf("Memcached %s: %s is not controlled by it", key, o.Ref()))
		}
	}
	for _, ref := range desired.Absent {
		obj, err := get(ctx, c, ref)
		if err == nil && obj != nil && metav1.IsControlledBy(obj, mc) {
			violations = append(violations, fmt.Sprintf("Memcached %s: %s is left, though it no longer asks for it", key, ref))
		}
	}
	return violations, nil
}

// Revisions returns how many pod templates the workload of mc has had that
// still show: the ReplicaSets of its Deployment, or the ControllerRevisions
// of its StatefulSet. A count that grows more than the spec changes that
// ask for new pods means pods were replaced for nothing.
func Revisions(ctx context.Context, c client.Client, mc *cachev1alpha1.Memcached) (int, error) {
	selector := client.MatchingLabels(resources.SelectorLabels(mc))
	if mc.Spec.Workload == cachev1alpha1.WorkloadStatefulSet {
		revisions := &appsv1.ControllerRevisionList{}
		if err := c.List(ctx, revisions, client.InNamespace(mc.Namespace), selector); err != nil {
			return 0, err
		}
		return len(revisions.Items), nil
	}
	replicaSets := &appsv1.ReplicaSetList{}
	if err := c.List(ctx, replicaSets, client.InNamespace(mc.Namespace), selector); err != nil {
		return 0, err
	}
	return len(replicaSets.Items), nil
}

// transient are errors an operator logs while the API server or etcd is
// away, or while another writer races it, and which the next reconcile
// mends.
var transient = []string{
	"connection refused", "connection reset", "EOF", "i/o timeout", "context deadline exceeded", "context canceled",
	"the object has been modified", "is being terminated", "etcdserver:", "timed out", "TLS handshake",
	"http2:", "the server is currently unable", "Too many requests", "server has received too many requests",
	"no such host", "leader changed", "unexpected error when reading response body", "client rate limiter",
	"the server was unable to return a response", "storage is (re)initializing",
}

// UnexpectedErrors returns the error lines of the operator's JSON log at
// path that are not among the transient ones, nor contain any of also.
func UnexpectedErrors(path string, also ...string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var found []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<24)
	for scanner.Scan() {
		line := scanner.Text()
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil || entry.Level != "error" {
			continue
		}
		if !containsAny(entry.Error+" "+entry.Msg, transient) && !containsAny(entry.Error+" "+entry.Msg, also) {
			found = append(found, entry.Msg+": "+entry.Error)
		}
	}
	return found, scanner.Err()
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// get reads the metadata of the object at ref; nil when there is none.
func get(ctx context.Context, c client.Client, ref resources.Ref) (*metav1.PartialObjectMetadata, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(ref.Kind.GroupVersionKind)
	if err := c.Get(ctx, ref.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return obj, nil
}

func isMissingAPI(err error) bool {
	return err != nil && (meta.IsNoMatchError(err) || (apierrors.IsNotFound(err) && strings.Contains(err.Error(), "the server could not find")))
}

func conditions(cs []metav1.Condition) string {
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s=%s(%s)", c.Type, c.Status, c.Reason))
	}
	return strings.Join(parts, " ")
}
