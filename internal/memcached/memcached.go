// Package memcached renders the memcached command line that the operator runs
// in every memcached container, and sizes the container's memory.
package memcached

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// Port is the TCP port memcached listens on.
const Port = 11211

// Defaults of the settings, as the CRD defaults them. They apply here too so
// that a spec built in Go without the API server's defaulting renders the same.
const (
	DefaultMemoryMB       = 64
	DefaultMaxConnections = 1024
	DefaultThreads        = 4
	DefaultMaxItemSizeKB  = 1024
)

// Args returns memcached's command-line arguments for spec.
//
// The port is always 11211 and UDP is always off (-U 0): memcached's UDP
// protocol has been abused for reflection attacks. spec.extraArgs come last.
func Args(spec *cachev1alpha1.MemcachedSpec) []string {
	args := []string{
		"-p", strconv.Itoa(Port),
		"-U", "0",
		"-m", strconv.Itoa(int(orDefault(spec.MemoryMB, DefaultMemoryMB))),
		"-c", strconv.Itoa(int(orDefault(spec.MaxConnections, DefaultMaxConnections))),
		"-t", strconv.Itoa(int(orDefault(spec.Threads, DefaultThreads))),
		"-I", strconv.Itoa(int(orDefault(spec.MaxItemSizeKB, DefaultMaxItemSizeKB))) + "k",
	}
	if spec.Verbosity > 0 {
		args = append(args, "-"+strings.Repeat("v", int(spec.Verbosity)))
	}
	return append(args, spec.ExtraArgs...)
}

// MemoryLimit returns the memory a memcached container needs for spec:
// memoryMB for items plus 10% and 32Mi for connections, threads and the hash
// table. It is the container's limit when spec sets none.
func MemoryLimit(spec *cachev1alpha1.MemcachedSpec) resource.Quantity {
	mb := int64(orDefault(spec.MemoryMB, DefaultMemoryMB))
	return *resource.NewQuantity((mb+mb/10+32)*1024*1024, resource.BinarySI)
}

// CheckMemoryLimit returns an error if spec sets a memory limit smaller than
// what memcached needs for spec.memoryMB.
func CheckMemoryLimit(spec *cachev1alpha1.MemcachedSpec) error {
	if spec.Resources == nil {
		return nil
	}
	limit, ok := spec.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		return nil
	}
	if need := MemoryLimit(spec); limit.Cmp(need) < 0 {
		return fmt.Errorf("resources.limits.memory %s is too small for memoryMB %d: memcached needs memoryMB + 10%% + 32Mi = %s; "+
			"raise the limit, or leave it out to have it derived", limit.String(), orDefault(spec.MemoryMB, DefaultMemoryMB), need.String())
	}
	return nil
}

func orDefault(v, def int32) int32 {
	if v == 0 {
		return def
	}
	return v
}
