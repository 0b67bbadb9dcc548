package memcached_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// stop stops s the way the pod's preStop hook does, and waits until it has
// exited.
func stop(t *testing.T, s *server) {
	t.Helper()
	script := memcached.StopScript(0)
	if !strings.Contains(script, "pid=1\n") {
		t.Fatalf("the stop script %q does not name memcached's process as pid=1", script)
	}
	script = strings.Replace(script, "pid=1\n", "pid="+strconv.Itoa(memcachedPID(t, s))+"\n", 1)
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("the stop script failed: %v\n%s", err, out)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("memcached did not exit")
	}
}

// memcachedPID returns the pid of the memcached process of s: the start
// script execs it, so it is the script's own.
func memcachedPID(t *testing.T, s *server) int {
	t.Helper()
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.cmd.Process.Pid))
	if err != nil || strings.TrimSpace(string(comm)) != "memcached" {
		t.Fatalf("process %d is %q (%v), not memcached: the start script must exec it", s.cmd.Process.Pid, comm, err)
	}
	return s.cmd.Process.Pid
}

// TestWarmRestart sets keys in memcached started as the pod starts it with
// spec.warmRestart, stops it as Kubernetes stops the pod, starts it at once
// with the same rendered command line and finds the keys again; and finds
// them gone when the image changed.
func TestWarmRestart(t *testing.T) {
	binary := memcachedBinary(t)
	dir := readableDir(t)
	dirs := map[string]string{memcached.MemoryFileDir: dir}
	spec := &cachev1alpha1.MemcachedSpec{Workload: cachev1alpha1.WorkloadStatefulSet,
		WarmRestart: &cachev1alpha1.WarmRestartSpec{Enabled: true}, ExtraArgs: []string{"-o", "modern"}}
	args := withDirs(memcached.Args(spec), dirs)
	script := replaceDirs(memcached.StartScript(), dirs)
	image := memcached.ImageEnv + "=memcached:1.6.39"

	keys := map[string]string{}
	for i := range 200 {
		keys[fmt.Sprintf("key-%d", i)] = strings.Repeat(strconv.Itoa(i), 100)
	}
	first := startScript(t, binary, script, args, image)
	client := memcache.New(first.addr)
	for k, v := range keys {
		if err := client.Set(&memcache.Item{Key: k, Value: []byte(v)}); err != nil {
			t.Fatalf("Set %s: %v", k, err)
		}
	}
	stop(t, first)
	if _, err := os.Stat(filepath.Join(dir, memcached.MemoryFile+".meta")); err != nil {
		t.Fatalf("stopping saved no metadata: %v\n%s", err, first.output)
	}

	// Restarted at once, as a container is: within the second memcached
	// stopped in, which it would refuse to restore from without the wait.
	second := startScript(t, binary, script, args, image)
	client = memcache.New(second.addr)
	for k, v := range keys {
		item, err := client.Get(k)
		if err != nil || string(item.Value) != v {
			t.Fatalf("after the restart, %s is %v, %v; want the value set before\n%s", k, item, err, second.output)
		}
	}

	// A new image starts with an empty cache: the layout of the memory file
	// may differ between versions.
	stop(t, second)
	third := startScript(t, binary, script, args, memcached.ImageEnv+"=memcached:1.6.40")
	if _, err := memcache.New(third.addr).Get("key-1"); !errors.Is(err, memcache.ErrCacheMiss) {
		t.Errorf("after an image change, key-1: %v; want a miss", err)
	}
}
