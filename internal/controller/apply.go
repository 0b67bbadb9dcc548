package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/csaupgrade"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/resources"
	"example.com/memcached-operator/internal/status"
)

// applied is what applying the desired state of a Memcached did.
type applied struct {
	// objects are the objects as the API server answered the apply, or as
	// the cache has them when they needed none, by kind and name.
	objects map[resources.Ref]client.Object
	// created names the objects created, for one event.
	created []string
	// createdRefs are the objects created by a create (createObject).
	createdRefs []resources.Ref
	// changes are the other changes made, told as events once applied.
	changes []change
	// missingAPIs are the optional kinds whose API the cluster turned out
	// not to have.
	missingAPIs map[schema.GroupVersionKind]bool
}

// change is what applying changed, told to users as an event on the Memcached.
type change struct {
	reason, action, note string
}

// applyDesired applies each object of desired that does not hold its
// configuration yet, and deletes the objects mc controls that desired names
// as absent. It never writes to an object mc does not control: such an
// object stays as it is, and the error names it. It stops at the first error.
func (r *MemcachedReconciler) applyDesired(ctx context.Context, mc *cachev1alpha1.Memcached, desired resources.Desired) (applied, error) {
	result := applied{objects: map[resources.Ref]client.Object{}, missingAPIs: map[schema.GroupVersionKind]bool{}}
	for _, obj := range desired.Objects {
		if obj.Kind.Optional && !r.hasAPI(obj.Kind) {
			result.missingAPIs[obj.Kind.GroupVersionKind] = true
			continue
		}
		live, err := r.applyObject(ctx, mc, obj, &result)
		if err != nil && obj.Kind.Optional && isMissingAPI(err) {
			result.missingAPIs[obj.Kind.GroupVersionKind] = true
			continue
		}
		if err != nil {
			return result, err
		}
		result.objects[obj.Ref()] = live
	}
	r.waitForCreated(ctx, result.createdRefs)
	for _, ref := range desired.Absent {
		if ref.Kind.Optional && !r.hasAPI(ref.Kind) {
			continue
		}
		if err := r.deleteOwned(ctx, mc, ref, "the spec no longer asks for it"); err != nil {
			return result, err
		}
	}
	return result, nil
}

// applyObject applies desired unless the object already holds it, and
// returns the object as last seen. An object of a built-in kind that the
// cache does not show is created (createObject); when its name turns out to
// be taken, the object is read from the API server and its owner checked
// as for any other.
func (r *MemcachedReconciler) applyObject(ctx context.Context, mc *cachev1alpha1.Memcached, desired resources.Object,
	result *applied) (client.Object, error) {
	ref := desired.Ref()
	live, err := r.cached(ctx, ref)
	if err != nil {
		return nil, err
	}
	if live == nil && !desired.Kind.Optional {
		// An object of another project's kind is read first and applied:
		// its fields are compared by a deduced schema, which the fields a
		// create records do not fit.
		created, err := r.createObject(ctx, desired, result)
		if !apierrors.IsAlreadyExists(err) {
			return created, err
		}
		// The name is taken by an object the cache does not show, maybe
		// someone else's.
	}
	if live == nil {
		if live, err = r.current(ctx, ref); err != nil {
			return nil, err
		}
	}
	exists := live != nil
	if exists && live.GetDeletionTimestamp() != nil {
		// It is going: its deletion brings the next reconcile, which
		// creates it anew.
		return live, nil
	}
	if exists {
		if err := checkOwner(mc, ref, live); err != nil {
			return nil, err
		}
		upToDate, err := r.fields.match(desired, live)
		if err != nil {
			return nil, err
		}
		if upToDate && metav1.IsControlledBy(live, mc) {
			return live, nil
		}
	}
	upgrade := false
	if exists {
		if upgrade, err = r.mustUpgradeCreatedFields(desired, live); err != nil {
			return nil, err
		}
	}

	changes := describeChanges(mc, desired, live)
	log := logf.FromContext(ctx).WithValues("kind", desired.Kind.Kind, "object", klog.KRef(ref.Namespace, ref.Name))
	if exists {
		log.Info("Updating object")
	} else {
		log.V(1).Info("Creating object")
	}
	if upgrade {
		// Before the apply: a field the create set and desired no longer
		// has could make the object invalid alongside what replaces it (one
		// handler of a hook for another). An apply the API server then
		// refuses leaves the object as it was, but for its managed fields.
		if err := r.upgradeCreatedFields(ctx, ref); err != nil {
			return live, err
		}
	}
	answer := desired.DeepCopy()
	err = r.Apply(ctx, client.ApplyConfigurationFromUnstructured(answer), fieldOwner, client.ForceOwnership)
	if err != nil && exists && desired.Kind.Recreate && isForbiddenUpdate(err) {
		// A field that cannot change did: the object goes, leaving its pods,
		// and comes back with the next reconcile, which the deletion
		// triggers.
		log.Info("Recreating object: a field that cannot be changed changed")
		return live, r.deleteObject(ctx, mc, ref, live, "a field of it that cannot be changed changed", metav1.DeletePropagationOrphan)
	}
	if err != nil {
		return live, applyError(ref, err)
	}
	if !exists {
		result.created = append(result.created, ref.String())
	}
	result.changes = append(result.changes, changes...)
	return r.typed(desired.Kind, answer), nil
}

// createObject creates desired, which the cache does not show. A create,
// unlike an apply, fails when the name is taken, so an object of someone
// else is never written, and nothing is read first: the error is
// AlreadyExists when the name is taken.
//
// The API server records the fields of a create as the operator's, by an
// Update operation, not an Apply: ownedFields.match counts both as the
// operator's, and upgradeCreatedFields makes them applied ones before an
// apply would leave any of them behind.
//
// The object is created typed: the client sends it, and decodes the answer,
// as protobuf, which costs the operator and the API server less than JSON.
func (r *MemcachedReconciler) createObject(ctx context.Context, desired resources.Object, result *applied) (client.Object, error) {
	ref := desired.Ref()
	logf.FromContext(ctx).V(1).Info("Creating object", "kind", desired.Kind.Kind, "object", klog.KRef(ref.Namespace, ref.Name))
	created, err := r.toTyped(desired.Unstructured)
	if err != nil {
		return nil, fmt.Errorf("failed to convert %s: %w", ref, err)
	}
	if err := r.Create(ctx, created, fieldOwner); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		return nil, applyError(ref, err)
	}
	result.created = append(result.created, ref.String())
	result.createdRefs = append(result.createdRefs, ref)
	return created, nil
}

// mustUpgradeCreatedFields reports whether the fields that the operator owns
// in live by the Update of its create must become its applied fields before
// it applies desired: unless desired sets every one of them, and the apply
// owns them all anyway, a field the create set that desired no longer has
// would stay, owned by the create's Update, which no apply removes.
func (r *MemcachedReconciler) mustUpgradeCreatedFields(desired resources.Object, live client.Object) (bool, error) {
	if createdFields(live) == nil || desired.Kind.Optional {
		return false, nil
	}
	covered, err := r.fields.covers(desired, live)
	return !covered, err
}

// upgradeCreatedFields makes the fields that the operator owns in the object
// at ref by the Update of its create its applied fields, as kubectl does
// when it moves an object from client-side to server-side apply
// (k8s.io/client-go/util/csaupgrade). Of them, the fields the API server
// defaulted on the create are removed by the next apply and defaulted again
// in the same write.
func (r *MemcachedReconciler) upgradeCreatedFields(ctx context.Context, ref resources.Ref) error {
	found := metadataOnly(ref.Kind)
	if err := r.APIReader.Get(ctx, ref.NamespacedName, found); err != nil {
		return fmt.Errorf("failed to get %s: %w", ref, err)
	}
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(found, sets.New(resources.ManagerName), resources.ManagerName)
	if err != nil {
		return fmt.Errorf("failed to make the created fields of %s applied ones: %w", ref, err)
	}
	if patch == nil {
		return nil
	}
	logf.FromContext(ctx).V(1).Info("Making the fields of a create applied ones", "kind", ref.Kind.Kind,
		"object", klog.KRef(ref.Namespace, ref.Name))
	// The patch holds the resourceVersion read: a write meanwhile makes it
	// fail with a conflict, retried.
	if err := r.Patch(ctx, found, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		return fmt.Errorf("failed to make the created fields of %s applied ones: %w", ref, err)
	}
	return nil
}

// applyError returns the error for a create or apply of ref that failed.
func applyError(ref resources.Ref, err error) error {
	if apierrors.IsInvalid(err) {
		// The spec holds a value that the API server refuses in the object
		// built from it: only a change of the spec helps. What runs stays
		// as it is.
		return &status.SpecError{Reason: status.ReasonInvalidSpec, Message: fmt.Sprintf(
			"The API server refuses the %s built from the spec, which is left as it was: %s", ref, statusMessage(err))}
	}
	return fmt.Errorf("failed to apply %s: %w", ref, err)
}

// cached returns the object at ref as the cache has it, nil when the cache
// has none. The cache holds only objects labelled as the operator's.
func (r *MemcachedReconciler) cached(ctx context.Context, ref resources.Ref) (client.Object, error) {
	obj := r.newObject(ref.Kind)
	if err := r.Get(ctx, ref.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("failed to get %s: %w", ref, err)
	}
	return obj, nil
}

// waitForCreated waits until the cache holds the objects created at refs,
// or cacheLagLimit passed. The next reconcile of the Memcached, which a pod
// event may queue meanwhile, then finds them there instead of creating them
// again, which would only fail with AlreadyExists.
func (r *MemcachedReconciler) waitForCreated(ctx context.Context, refs []resources.Ref) {
	deadline, cancel := context.WithTimeout(ctx, cacheLagLimit)
	defer cancel()
	for _, ref := range refs {
		obj := r.newObject(ref.Kind)
		err := wait.PollUntilContextCancel(deadline, 5*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			err := r.Get(ctx, ref.NamespacedName, obj)
			return err == nil, client.IgnoreNotFound(err)
		})
		if err != nil {
			logf.FromContext(ctx).V(1).Info("The cache does not hold a created object yet", "kind", ref.Kind.Kind,
				"object", klog.KRef(ref.Namespace, ref.Name), "error", err.Error())
			return
		}
	}
}

// current returns the object at ref as the cache has it, or, when the cache
// has none, as the API server has it: the cache holds only objects labelled
// as the operator's, and an object someone else made must not look absent.
// It returns nil when there is none.
func (r *MemcachedReconciler) current(ctx context.Context, ref resources.Ref) (client.Object, error) {
	if obj, err := r.cached(ctx, ref); obj != nil || err != nil {
		return obj, err
	}
	found := metadataOnly(ref.Kind)
	if err := r.APIReader.Get(ctx, ref.NamespacedName, found); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("failed to get %s: %w", ref, err)
	}
	return found, nil
}

// predecessorError is an object that a deleted Memcached of the same name
// controls: the garbage collector deletes it, and its deletion brings the
// next reconcile.
type predecessorError struct {
	ref resources.Ref
}

func (e *predecessorError) Error() string {
	return fmt.Sprintf("%s still belongs to a deleted Memcached of the same name", e.ref)
}

// checkOwner returns a ConflictError unless mc controls obj, or obj has no
// controller and its labels show that the operator made it for mc, e.g.
// after a backup was restored without owner references: then mc adopts it.
// It returns a predecessorError for an object of a deleted Memcached of the
// same name.
func checkOwner(mc *cachev1alpha1.Memcached, ref resources.Ref, obj client.Object) error {
	owner := metav1.GetControllerOfNoCopy(obj)
	switch {
	case owner != nil && owner.UID == mc.UID:
		return nil
	case owner == nil && resources.IsManagedBy(obj.GetLabels(), mc.Name):
		return nil
	case isMemcachedNamed(owner, mc.Name):
		// Names are unique: the Memcached that owns it is gone.
		return &predecessorError{ref: ref}
	case owner == nil:
		return &status.ConflictError{Object: ref.String()}
	default:
		return &status.ConflictError{Object: ref.String(), Owner: owner.Kind + " " + owner.Name}
	}
}

// isMemcachedNamed tells whether owner is a Memcached named name, of any
// version.
func isMemcachedNamed(owner *metav1.OwnerReference, name string) bool {
	return isMemcached(owner) && owner.Name == name
}

// isMemcached tells whether owner is a Memcached, of any version.
func isMemcached(owner *metav1.OwnerReference) bool {
	return owner != nil &&
		schema.FromAPIVersionAndKind(owner.APIVersion, owner.Kind).GroupKind() == cachev1alpha1.GroupVersion.WithKind("Memcached").GroupKind()
}

// deleteOwned deletes the object at ref, as the cache has it, if mc
// controls it.
func (r *MemcachedReconciler) deleteOwned(ctx context.Context, mc *cachev1alpha1.Memcached, ref resources.Ref, why string) error {
	obj := r.newObject(ref.Kind)
	if err := r.Get(ctx, ref.NamespacedName, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, mc) {
		return nil
	}
	logf.FromContext(ctx).Info("Deleting object", "kind", ref.Kind.Kind, "object", klog.KObj(obj))
	return r.deleteObject(ctx, mc, ref, obj, why, metav1.DeletePropagationBackground)
}

func (r *MemcachedReconciler) deleteObject(ctx context.Context, mc *cachev1alpha1.Memcached, ref resources.Ref,
	obj client.Object, why string, propagation metav1.DeletionPropagation) error {
	err := r.Delete(ctx, obj, client.Preconditions{UID: ptr.To(obj.GetUID())}, client.PropagationPolicy(propagation))
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("failed to delete %s: %w", ref, err)
	}
	r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "Deleted", "Delete", "Deleted %s: %s", ref, why)
	return nil
}

// newObject returns an empty object of kind to read from the cache: the
// typed object for the kinds whose spec or status the operator reads, their
// metadata for the others.
func (r *MemcachedReconciler) newObject(kind resources.Kind) client.Object {
	if kind.Full {
		obj, err := r.Scheme().New(kind.GroupVersionKind)
		if err != nil {
			panic(fmt.Sprintf("the scheme lacks %s: %v", kind.GroupVersionKind, err)) // a programming error
		}
		return obj.(client.Object)
	}
	return metadataOnly(kind)
}

func metadataOnly(kind resources.Kind) *metav1.PartialObjectMetadata {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(kind.GroupVersionKind)
	return obj
}

// typed returns the object the API server answered an apply or a create
// with: typed for the kinds whose spec and status the operator reads, as it
// was for the others.
func (r *MemcachedReconciler) typed(kind resources.Kind, answer *unstructured.Unstructured) client.Object {
	if !kind.Full {
		return answer
	}
	obj, err := r.toTyped(answer)
	if err != nil {
		return answer
	}
	return obj
}

// toTyped converts u into the Go type of its kind.
func (r *MemcachedReconciler) toTyped(u *unstructured.Unstructured) (client.Object, error) {
	obj, err := r.Scheme().New(u.GroupVersionKind())
	if err != nil {
		return nil, err
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return nil, err
	}
	return obj.(client.Object), nil
}

// hasAPI reports whether the cluster has the API of an optional kind.
func (r *MemcachedReconciler) hasAPI(kind resources.Kind) bool {
	return r.APIs[kind.GroupVersionKind]
}

// describeChanges describes, as events, what applying desired over live, an
// existing workload, changes: a scale, a new pod template, or fields put
// back. They are computed before applying and recorded only once the apply
// succeeded.
func describeChanges(mc *cachev1alpha1.Memcached, desired resources.Object, live client.Object) []change {
	if live == nil || !desired.Kind.Full || desired.GetName() != mc.Name {
		return nil // a new object is told by the Created event
	}
	var changes []change
	wantReplicas, _, _ := unstructured.NestedInt64(desired.Object, "spec", "replicas")
	if haveReplicas, ok := specReplicas(live); ok && int64(haveReplicas) != wantReplicas {
		changes = append(changes, change{"Scaled", "Scale", fmt.Sprintf("Scaled %s from %d to %d replicas",
			desired.Ref(), haveReplicas, wantReplicas)})
	}
	hash := resources.TemplateHashAnnotation
	switch {
	case live.GetAnnotations()[hash] != desired.GetAnnotations()[hash]:
		changes = append(changes, change{"ConfigChanged", "Update",
			fmt.Sprintf("Updated the pod template of %s: the memcached pods are replaced", desired.Ref())})
	case len(changes) == 0:
		changes = append(changes, change{"DriftCorrected", "Update",
			fmt.Sprintf("Put back fields of %s that were changed outside the operator", desired.Ref())})
	}
	return changes
}

// specReplicas returns the replicas of a workload's spec.
func specReplicas(obj client.Object) (int32, bool) {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return ptr.Deref(w.Spec.Replicas, 1), true
	case *appsv1.StatefulSet:
		return ptr.Deref(w.Spec.Replicas, 1), true
	}
	return 0, false
}

// isForbiddenUpdate reports whether err says that the update changes a field
// of the spec that cannot be changed, and nothing else.
func isForbiddenUpdate(err error) bool {
	var apiStatus apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &apiStatus) || apiStatus.Status().Details == nil ||
		len(apiStatus.Status().Details.Causes) == 0 {
		return false
	}
	for _, cause := range apiStatus.Status().Details.Causes {
		immutable := cause.Type == metav1.CauseTypeFieldValueInvalid && strings.HasPrefix(cause.Field, "spec.") &&
			strings.HasSuffix(cause.Message, apivalidation.FieldImmutableErrorMsg)
		forbidden := cause.Type == metav1.CauseTypeForbidden && cause.Field == "spec"
		if !immutable && !forbidden {
			return false
		}
	}
	return true
}

// isMissingAPI reports whether err says that the cluster has no API for the
// kind: it was removed since the operator started.
func isMissingAPI(err error) bool {
	return meta.IsNoMatchError(err) || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err)
}

// statusMessage returns the message of the API error err.
func statusMessage(err error) string {
	var apiStatus apierrors.APIStatus
	if errors.As(err, &apiStatus) {
		return apiStatus.Status().Message
	}
	return err.Error()
}
