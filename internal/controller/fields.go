package controller

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/applyconfigurations"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	smdvalue "sigs.k8s.io/structured-merge-diff/v6/value"

	"example.com/memcached-operator/internal/resources"
)

// ownedFields tells whether the fields the operator owns in an object are
// exactly those its apply configuration sets.
//
// Server-side apply records, for each field manager, the fields it owns. When
// another writer changes a field the operator applied, the field becomes that
// writer's; fields others add (a sidecar injected into a pod template, a
// label) are theirs. So, with the configuration last applied unchanged (its
// digest, AppliedHashAnnotation, is itself an applied field), the object
// still holds it exactly when the operator's fields are the configuration's:
// the comparison SSA itself makes, by merge key, without reading the
// object's spec.
type ownedFields struct {
	builtin managedfields.TypeConverter
	deduced managedfields.TypeConverter

	mu sync.Mutex
	// desired remembers, by applied digest, the digest of the fields of a
	// configuration.
	desired map[string][sha256.Size]byte
	// owning remembers, by applied digest, the digest of the fields the
	// operator owns in an object it created that were found to hold every
	// field of the configuration.
	owning map[string][sha256.Size]byte
}

// maxRemembered bounds ownedFields.desired.
const maxRemembered = 1 << 14

func newOwnedFields(scheme *runtime.Scheme) *ownedFields {
	return &ownedFields{
		builtin: applyconfigurations.NewTypeConverter(scheme),
		// The kinds of other projects, whose schema the operator does not
		// have, compare as server-side apply compares objects of a CRD
		// without list types: lists as a whole.
		deduced: managedfields.NewDeducedTypeConverter(),
		desired: map[string][sha256.Size]byte{},
		owning:  map[string][sha256.Size]byte{},
	}
}

// notCompared are the fields left out of the comparison: those the API
// server never records as owned, and the owner references, which the
// operator checks itself before it applies anything.
var notCompared = fieldpath.NewSet(
	fieldpath.MakePathOrDie("apiVersion"),
	fieldpath.MakePathOrDie("kind"),
	fieldpath.MakePathOrDie("metadata"),
	fieldpath.MakePathOrDie("metadata", "name"),
	fieldpath.MakePathOrDie("metadata", "namespace"),
)

var ownerReferencesPath = fieldpath.MakePathOrDie("metadata", "ownerReferences")

// match reports whether live, an object the operator applied desired to,
// still holds desired: desired carries the same applied digest as live, and
// the fields the operator owns in live are those of desired.
func (f *ownedFields) match(desired resources.Object, live metav1.Object) (bool, error) {
	hash := desired.GetAnnotations()[resources.AppliedHashAnnotation]
	if hash == "" || live.GetAnnotations()[resources.AppliedHashAnnotation] != hash {
		return false, nil
	}
	if created := createdFields(live); created != nil && !desired.Kind.Optional {
		return f.ownsCreated(desired, live, created)
	}
	raw := appliedFields(live)
	if raw == nil {
		return false, nil
	}
	have := &fieldpath.Set{}
	if err := have.FromJSON(bytes.NewReader(raw)); err != nil {
		return false, fmt.Errorf("failed to read the managed fields of %s: %w", desired.Ref(), err)
	}
	if desired.Kind.Optional {
		return f.matchDeduced(desired, have)
	}
	want, err := f.desiredDigest(desired)
	if err != nil {
		return false, err
	}
	return digest(have) == want, nil
}

// matchDeduced compares, for a kind whose schema the operator does not
// have, the fields the operator owns in the object, have, with those desired
// sets. The API server records the fields of a list it merges by key, or of
// a struct it holds as a whole (such as a label selector), differently from
// the deduced schema: so both sides are compared by their leaves, a list
// taken as a whole, and a field of desired counted as the field of have that
// holds it as a whole.
func (f *ownedFields) matchDeduced(desired resources.Object, have *fieldpath.Set) (bool, error) {
	value, err := f.deduced.ObjectToTyped(desired.Unstructured, typed.AllowDuplicates)
	if err != nil {
		return false, fmt.Errorf("failed to read the fields of %s: %w", desired.Ref(), err)
	}
	want, err := value.ToFieldSet()
	if err != nil {
		return false, fmt.Errorf("failed to read the fields of %s: %w", desired.Ref(), err)
	}
	if !ownsEveryFieldOfTheKeyedElements(desired.Object, have) {
		return false, nil
	}
	haveLeaves := wholeLists(have.Leaves())
	covered := &fieldpath.Set{}
	wholeLists(want.Leaves()).Iterate(func(p fieldpath.Path) {
		for i := 1; i < len(p); i++ {
			if haveLeaves.Has(p[:i]) {
				covered.Insert(p[:i])
				return
			}
		}
		covered.Insert(p)
	})
	return digest(haveLeaves) == digest(covered), nil
}

// ownsEveryFieldOfTheKeyedElements reports whether, in each element of a list
// that the API server merges by key (the groups of a PrometheusRule, say),
// the operator owns every field that desired sets in it. The API server
// records the fields of such an element one by one, and another writer that
// edits one takes it over; the comparison by whole lists that follows would
// not see it.
func ownsEveryFieldOfTheKeyedElements(desired map[string]any, have *fieldpath.Set) bool {
	owns := true
	have.Iterate(func(p fieldpath.Path) {
		if !owns || len(p) == 0 || p[len(p)-1].Key == nil {
			return
		}
		element := desiredElement(desired, p)
		if element == nil {
			return
		}
		children := have
		for _, e := range p {
			children = children.WithPrefix(e)
		}
		if children.Empty() {
			// An element held as a whole, such as an owner reference.
			return
		}
		for name := range element {
			if !children.Has(fieldpath.Path{fieldpath.PathElement{FieldName: &name}}) {
				owns = false
				return
			}
		}
	})
	return owns
}

// desiredElement returns the element of desired at p, a path of field names
// that ends with an element of a list selected by its key, nil when desired
// has none there.
func desiredElement(desired map[string]any, p fieldpath.Path) map[string]any {
	last := len(p) - 1
	node := any(desired)
	for _, e := range p[:last] {
		fields, ok := node.(map[string]any)
		if !ok || e.FieldName == nil {
			return nil
		}
		node = fields[*e.FieldName]
	}
	list, ok := node.([]any)
	if !ok {
		return nil
	}
	return elementWithKey(list, *p[last].Key)
}

// elementWithKey returns the element of list whose fields have the values
// of key.
func elementWithKey(list []any, key smdvalue.FieldList) map[string]any {
	for _, item := range list {
		element, ok := item.(map[string]any)
		if !ok {
			continue
		}
		matches := true
		for _, f := range key {
			if !smdvalue.Equals(smdvalue.NewValueInterface(element[f.Name]), f.Value) {
				matches = false
				break
			}
		}
		if matches {
			return element
		}
	}
	return nil
}

// wholeLists returns the paths of set, each cut before its first element of
// a list.
func wholeLists(set *fieldpath.Set) *fieldpath.Set {
	out := &fieldpath.Set{}
	set.Iterate(func(p fieldpath.Path) {
		for i, e := range p {
			if e.FieldName == nil {
				p = p[:i]
				break
			}
		}
		out.Insert(p)
	})
	return out
}

// ownsCreated reports whether the operator, in live, an object it created,
// owns every field desired sets, by the Update of its create (created) or an
// apply since. The create's fields are more than desired sets: the API
// server records the fields it defaulted, and the maps a field is in.
// Another writer that changes or removes a field takes it from them.
func (f *ownedFields) ownsCreated(desired resources.Object, live metav1.Object, created []byte) (bool, error) {
	applied := appliedFields(live)
	key := rememberKey(desired)
	sum := sha256.New()
	sum.Write(applied)
	sum.Write([]byte{0})
	sum.Write(created)
	var owned [sha256.Size]byte
	sum.Sum(owned[:0])
	f.mu.Lock()
	known, ok := f.owning[key]
	f.mu.Unlock()
	if ok && known == owned {
		return true, nil
	}

	have, err := fieldSet(created)
	if err != nil {
		return false, fmt.Errorf("failed to read the managed fields of %s: %w", desired.Ref(), err)
	}
	if applied != nil {
		appliedSet, err := fieldSet(applied)
		if err != nil {
			return false, fmt.Errorf("failed to read the managed fields of %s: %w", desired.Ref(), err)
		}
		have = have.Union(appliedSet)
	}
	want, err := f.desiredSet(desired)
	if err != nil {
		return false, err
	}
	owns := true
	want.Leaves().Iterate(func(p fieldpath.Path) {
		if owns && !notCompared.Has(p) && !hasPrefix(p, ownerReferencesPath) && !have.Has(p) {
			owns = false
		}
	})
	if owns {
		f.mu.Lock()
		if len(f.owning) >= maxRemembered {
			clear(f.owning)
		}
		f.owning[key] = owned
		f.mu.Unlock()
	}
	return owns, nil
}

// covers reports whether desired sets every field that the operator owns in
// live by the Update of its create: then applying desired owns them all. A
// map or struct the create recorded (data, of a ConfigMap) counts as set
// when desired sets a field in it: once an apply has taken the fields in it
// that changed, the create still owns the map itself.
func (f *ownedFields) covers(desired resources.Object, live metav1.Object) (bool, error) {
	have, err := fieldSet(createdFields(live))
	if err != nil {
		return false, fmt.Errorf("failed to read the managed fields of %s: %w", desired.Ref(), err)
	}
	want, err := f.desiredSet(desired)
	if err != nil {
		return false, err
	}
	holding := &fieldpath.Set{}
	want.Iterate(func(p fieldpath.Path) {
		for i := 1; i < len(p); i++ {
			holding.Insert(p[:i])
		}
	})
	covered := true
	have.Leaves().Iterate(func(p fieldpath.Path) {
		if covered && !want.Has(p) && !holding.Has(p) {
			covered = false
		}
	})
	return covered, nil
}

// desiredSet returns the fields desired sets.
func (f *ownedFields) desiredSet(desired resources.Object) (*fieldpath.Set, error) {
	converter := f.builtin
	if desired.Kind.Optional {
		converter = f.deduced
	}
	value, err := converter.ObjectToTyped(desired.Unstructured, typed.AllowDuplicates)
	if err != nil {
		return nil, fmt.Errorf("failed to read the fields of %s: %w", desired.Ref(), err)
	}
	set, err := value.ToFieldSet()
	if err != nil {
		return nil, fmt.Errorf("failed to read the fields of %s: %w", desired.Ref(), err)
	}
	return set, nil
}

// rememberKey names desired, with its applied digest, in what ownedFields
// remembers.
func rememberKey(desired resources.Object) string {
	return desired.Kind.Kind + "/" + desired.GetNamespace() + "/" + desired.GetName() + "/" +
		desired.GetAnnotations()[resources.AppliedHashAnnotation]
}

func fieldSet(raw []byte) (*fieldpath.Set, error) {
	set := &fieldpath.Set{}
	if err := set.FromJSON(bytes.NewReader(raw)); err != nil {
		return nil, err
	}
	return set, nil
}

// desiredDigest returns the digest of the fields desired sets.
func (f *ownedFields) desiredDigest(desired resources.Object) ([sha256.Size]byte, error) {
	key := rememberKey(desired)
	f.mu.Lock()
	d, ok := f.desired[key]
	f.mu.Unlock()
	if ok {
		return d, nil
	}
	set, err := f.desiredSet(desired)
	if err != nil {
		return d, err
	}
	d = digest(set)
	f.mu.Lock()
	if len(f.desired) >= maxRemembered {
		clear(f.desired)
	}
	f.desired[key] = d
	f.mu.Unlock()
	return d, nil
}

// digest returns a digest of the compared fields of set.
func digest(set *fieldpath.Set) [sha256.Size]byte {
	compared := &fieldpath.Set{}
	set.Iterate(func(p fieldpath.Path) {
		if !notCompared.Has(p) && !hasPrefix(p, ownerReferencesPath) {
			compared.Insert(p)
		}
	})
	data, err := compared.ToJSON()
	if err != nil {
		panic(fmt.Sprintf("failed to encode a field set: %v", err)) // a programming error
	}
	return sha256.Sum256(data)
}

func hasPrefix(p, prefix fieldpath.Path) bool {
	if len(p) < len(prefix) {
		return false
	}
	for i := range prefix {
		if !p[i].Equals(prefix[i]) {
			return false
		}
	}
	return true
}

// appliedFields returns the fields the operator owns in obj by server-side
// apply, nil when it owns none.
func appliedFields(obj metav1.Object) []byte {
	return ownFields(obj, metav1.ManagedFieldsOperationApply)
}

// createdFields returns the fields the operator owns in obj by the Update of
// its create, nil when it owns none.
func createdFields(obj metav1.Object) []byte {
	return ownFields(obj, metav1.ManagedFieldsOperationUpdate)
}

func ownFields(obj metav1.Object, operation metav1.ManagedFieldsOperationType) []byte {
	for _, m := range obj.GetManagedFields() {
		if m.Manager == resources.ManagerName && m.Operation == operation && m.Subresource == "" && m.FieldsV1 != nil {
			return m.FieldsV1.GetRawBytes()
		}
	}
	return nil
}
