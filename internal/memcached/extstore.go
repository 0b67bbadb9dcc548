package memcached

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// Where the memcached container keeps the file of spec.extstore.
const (
	// ExtstoreDir is where each pod's extstore volume is mounted.
	ExtstoreDir = "/var/lib/memcached-extstore"
	// ExtstoreFile is memcached's file on it.
	ExtstoreFile = "extstore"
)

// What memcached makes of its extstore settings (storage.c, extstore.c).
const (
	// ExtstorePageMB is the size of the pages of memcached's file
	// (ext_page_size, left at memcached's default): memcached refuses a
	// file of no page, and a write buffer that does not divide a page.
	ExtstorePageMB = 64
	// ExtstoreMaxPages is one more than the pages memcached can address:
	// extstore_init refuses a file of ExtstoreMaxPages pages or more.
	ExtstoreMaxPages = 65535
	// ExtstoreWriteBuffers is how many write buffers of ext_wbuf_size
	// memcached allocates, outside -m: one per page bucket, 6 since
	// memcached 1.6.25 (PAGE_BUCKET_COUNT; 4 before).
	ExtstoreWriteBuffers = 6
	// ExtstoreBuffersOutsideMemory is how many buffers of ext_wbuf_size
	// memcached may hold outside -m: its write buffers, all of which a
	// file being compacted can fill, and the compaction thread's read
	// buffer (storage.c, storage_compact_thread's readback_buf).
	ExtstoreBuffersOutsideMemory = ExtstoreWriteBuffers + 1
	// extstoreFilePercent is the share of the volume the file takes: the
	// rest is left to the filesystem, as Loki's guidance has it.
	extstoreFilePercent = 90
)

// ExtstoreFileMB returns the size, in MiB, of memcached's extstore file for
// spec: 90% of the volume, rounded down. It returns 0 for a size that is not
// a whole number of Mi, Gi or Ti.
func ExtstoreFileMB(spec *cachev1alpha1.MemcachedSpec) int64 {
	return volumeMB(spec.Extstore.GetSize()) * extstoreFilePercent / 100
}

// volumeMB returns size, a whole number of Mi, Gi or Ti, in MiB, or 0.
func volumeMB(size string) int64 {
	if len(size) < 3 || len(size) > 9 || size[0] == '0' {
		return 0
	}
	digits := size[:len(size)-2]
	if strings.Trim(digits, "0123456789") != "" {
		return 0
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0
	}
	switch size[len(size)-2:] {
	case "Mi":
		return n
	case "Gi":
		return n * 1024
	case "Ti":
		return n * 1024 * 1024
	}
	return 0
}

// ExtstoreVolumeSize returns the size of each pod's extstore volume.
func ExtstoreVolumeSize(spec *cachev1alpha1.MemcachedSpec) resource.Quantity {
	return *resource.NewQuantity(volumeMB(spec.Extstore.GetSize())*1024*1024, resource.BinarySI)
}

// ExtstoreClaimName returns the name of the volume claim template of the
// extstore volumes: extstore-<size>, so that a volume made for another size,
// left over from before extstore was turned off, is never mounted.
func ExtstoreClaimName(spec *cachev1alpha1.MemcachedSpec) string {
	return "extstore-" + strings.ToLower(spec.Extstore.GetSize())
}

// ExtstoreClaimSizeMB returns the size, in MiB, that the claim template
// claim, named by ExtstoreClaimName, was named after; 0 for another name.
func ExtstoreClaimSizeMB(claim string) int64 {
	size, ok := strings.CutPrefix(claim, "extstore-")
	if !ok || len(size) < 3 {
		return 0
	}
	unit := strings.ToUpper(size[len(size)-2:len(size)-1]) + size[len(size)-1:]
	return volumeMB(size[:len(size)-2] + unit)
}

// extstoreOptions returns the -o value of spec.extstore.
func extstoreOptions(spec *cachev1alpha1.MemcachedSpec) string {
	e := spec.Extstore
	options := []string{
		"ext_path=" + path.Join(ExtstoreDir, ExtstoreFile) + ":" + strconv.FormatInt(ExtstoreFileMB(spec), 10) + "m",
		"ext_wbuf_size=" + strconv.Itoa(int(e.GetWriteBufferMB())),
		"ext_threads=" + strconv.Itoa(int(e.GetIOThreads())),
		"ext_item_size=" + strconv.Itoa(int(e.GetItemSizeBytes())),
		"ext_max_sleep=" + strconv.Itoa(int(e.GetMaxSleepMicroseconds())),
		"ext_recache_rate=" + strconv.Itoa(int(e.GetRecacheRate())),
		fmt.Sprintf("slab_automove_freeratio=%.2f", float64(e.GetFreeMemoryPercent())/100),
	}
	if e.ItemAgeSeconds != nil {
		options = append(options, "ext_item_age="+strconv.Itoa(int(*e.ItemAgeSeconds)))
	}
	return strings.Join(options, ",")
}

// extstorePath is the path of spec.extstore in messages.
var extstorePath = field.NewPath("spec", "extstore")

// CheckExtstore returns a *field.Error if spec.extstore is enabled with
// settings memcached refuses or the operator cannot give it, as the CRD's
// validation rules do at admission: memcached refuses an item size above its
// write buffers (storage_check_config), a file of no whole page and one of
// 65535 pages or more (storage_conf_parse, extstore_init); with warm
// restart, it silently starts with an empty cache (memcached.c: "memory
// restart with extstore not presently supported"); and only a StatefulSet
// gives each pod a volume of its own.
func CheckExtstore(spec *cachev1alpha1.MemcachedSpec) error {
	e := spec.Extstore
	if e == nil {
		return nil
	}
	size := e.GetSize()
	mb := volumeMB(size)
	if mb == 0 {
		return field.Invalid(extstorePath.Child("size"), size, "extstore.size must be a whole number of Mi, Gi or Ti, such as 100Gi")
	}
	if !e.Enabled {
		return nil
	}
	wbuf := e.GetWriteBufferMB()
	switch {
	case spec.GetWorkload() != cachev1alpha1.WorkloadStatefulSet:
		return field.Invalid(extstorePath.Child("enabled"), true,
			"extstore needs workload: StatefulSet: its file lives on a volume of each pod's own")
	case spec.WarmRestartEnabled():
		return field.Invalid(extstorePath.Child("enabled"), true,
			"extstore cannot be combined with warmRestart: memcached does not restore its memory file when extstore is on")
	case mb*extstoreFilePercent/100 < ExtstorePageMB:
		return field.Invalid(extstorePath.Child("size"), size,
			"extstore.size is too small: memcached's file, 90% of the volume, must hold at least one 64 MiB page (a volume of at least 72Mi)")
	case mb*extstoreFilePercent/100/ExtstorePageMB >= ExtstoreMaxPages:
		return field.Invalid(extstorePath.Child("size"), size,
			"extstore.size is too large: memcached's file, 90% of the volume, may hold at most 65534 pages of 64 MiB (a volume of at most 4551Gi)")
	case wbuf < 2 || wbuf > ExtstorePageMB || ExtstorePageMB%wbuf != 0 || wbuf%2 != 0:
		return field.NotSupported(extstorePath.Child("writeBufferMB"), wbuf, []string{"2", "4", "8", "16", "32", "64"})
	case int64(spec.GetMaxItemSizeKB()) > int64(wbuf)*1024:
		return field.Invalid(field.NewPath("spec", "maxItemSizeKB"), spec.GetMaxItemSizeKB(),
			"with extstore, maxItemSizeKB may be at most extstore.writeBufferMB * 1024: memcached refuses items larger than its write buffers")
	}
	return nil
}

// extstoreMemoryMB returns the memory, in MiB, that extstore takes outside
// -m: its write buffers and the read buffer of compaction.
func extstoreMemoryMB(spec *cachev1alpha1.MemcachedSpec) int64 {
	if !spec.ExtstoreEnabled() {
		return 0
	}
	return ExtstoreBuffersOutsideMemory * int64(spec.Extstore.GetWriteBufferMB())
}

// extstoreMemoryNote returns what messages about the memory limit add for
// extstore's buffers.
func extstoreMemoryNote(spec *cachev1alpha1.MemcachedSpec) string {
	if !spec.ExtstoreEnabled() {
		return ""
	}
	return fmt.Sprintf(" + %d x extstore.writeBufferMB", ExtstoreBuffersOutsideMemory)
}
