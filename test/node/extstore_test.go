package node

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
	"example.com/memcached-operator/test/internal/realnode"
)

// A StatefulSet pod with extstore on a local volume of the node: memcached
// runs with the file on the pod's own claim, serves values of six times its
// memory, reading the values memory no longer holds back from the file, and
// stays within the memory limit the operator derived. A larger size that its
// volume holds gives memcached a larger file on it; one beyond, which a local
// volume cannot grow to, leaves the pod running and the Memcached Degraded.
func TestExtstoreOnALocalVolumeServesSixTimesItsMemory(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// memcached moves values to the file when less than freeMemoryPercent
	// of -m is free; at 50%, a client that waits while more than 40 MB are
	// still to be moved never outruns it (docs/extstore.md).
	free := int32(50)
	mc := createMemcached(t, ns, "flash", 1, func(s *cachev1alpha1.MemcachedSpec) {
		s.Workload = cachev1alpha1.WorkloadStatefulSet
		s.MemoryMB = 64
		s.Extstore = &cachev1alpha1.ExtstoreSpec{Enabled: true, Size: "2Gi", FreeMemoryPercent: &free}
	})
	mc = waitAvailable(t, mc, 1)

	// The pod mounts its own claim, bound to one of the node's local volumes.
	pod := &corev1.Pod{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "flash-0"}, pod)).To(Succeed())
	claimName := memcached.ExtstoreClaimName(&mc.Spec) + "-flash-0"
	g.Expect(claimName).To(Equal("extstore-2gi-flash-0"))
	claim := &corev1.PersistentVolumeClaim{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: claimName}, claim)).To(Succeed())
	g.Expect(claim.Status.Phase).To(Equal(corev1.ClaimBound))
	g.Expect(claim.Spec.StorageClassName).To(HaveValue(Equal(realnode.StorageClassName)))
	g.Expect(claim.Spec.Resources.Requests.Storage().String()).To(Equal("2Gi"))
	volume := &corev1.PersistentVolume{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKey{Name: claim.Spec.VolumeName}, volume)).To(Succeed())
	g.Expect(volume.Spec.Local).NotTo(BeNil())
	var volumeName string
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claimName {
			volumeName = v.Name
		}
	}
	g.Expect(volumeName).NotTo(BeEmpty(), "the pod has no volume of the claim %s: %v", claimName, pod.Spec.Volumes)
	container := memcachedContainer(g, pod)
	g.Expect(container.VolumeMounts).To(ContainElement(And(
		HaveField("Name", volumeName), HaveField("MountPath", memcached.ExtstoreDir))))
	limit := container.Resources.Limits.Memory()
	g.Expect(limit.String()).To(Equal("326Mi"), "64 + 6 + 32 + 7 x 32: the write buffers and compaction's read buffer")

	// memcached runs with the file on the claim's volume: the file it opened
	// in its container is the one in the node's local volume.
	pid, err := containerProcess(string(pod.UID), "memcached")
	g.Expect(err).NotTo(HaveOccurred())
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	g.Expect(err).NotTo(HaveOccurred())
	fileMB := memcached.ExtstoreFileMB(&mc.Spec)
	g.Expect(string(cmdline)).To(ContainSubstring(
		fmt.Sprintf("ext_path=%s/%s:%dm,", memcached.ExtstoreDir, memcached.ExtstoreFile, fileMB)))
	onVolume := filepath.Join(volume.Spec.Local.Path, memcached.ExtstoreFile)
	inContainer := filepath.Join("/proc", strconv.Itoa(pid), "root", memcached.ExtstoreDir, memcached.ExtstoreFile)
	volumeFile, err := os.Stat(onVolume)
	g.Expect(err).NotTo(HaveOccurred())
	containerFile, err := os.Stat(inContainer)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.SameFile(volumeFile, containerFile)).To(BeTrue(),
		"memcached's %s is not the file of the volume %s", inContainer, onVolume)

	address := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(memcached.Port))
	c := newClient(address)
	c.Timeout = 5 * time.Second
	const (
		keys      = 4000
		valueSize = 100 * 1024 // 409.6 MB in all, 6.1 times -m 64
		// backlog is how many values the client lets memcached have still
		// to move to the file: 40 MB, as the writer starts at 32 MB used
		// and memcached evicts at 64.
		backlog = 400
	)
	value := func(i int) []byte {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, valueSize)
		copy(v, strconv.Itoa(i))
		return v
	}
	written := func() (int64, error) {
		stats, err := extstoreStats(address)
		if err != nil {
			return 0, err
		}
		return stats.int("extstore_objects_written")
	}
	start := time.Now()
	retries := 0
	for i := range keys {
		g.Eventually(written).WithTimeout(30*time.Second).WithPolling(5*time.Millisecond).
			Should(BeNumerically(">=", i-backlog), "memcached wrote no more values to its file")
		item := &memcache.Item{Key: key(i), Value: value(i)}
		// While its write buffers are full, memcached answers out of
		// memory: the set is tried again until it succeeds.
		tries := 0
		g.Eventually(func() error {
			tries++
			err := c.Set(item)
			if err != nil && !strings.Contains(err.Error(), "out of memory") {
				return StopTrying("Set " + item.Key).Wrap(err)
			}
			return err
		}).WithTimeout(30 * time.Second).WithPolling(10 * time.Millisecond).Should(Succeed())
		retries += tries - 1
	}
	wrote := time.Since(start)

	start = time.Now()
	for i := range keys {
		item, err := c.Get(key(i))
		g.Expect(err).NotTo(HaveOccurred(), "Get %s", key(i))
		g.Expect(bytes.Equal(item.Value, value(i))).To(BeTrue(),
			"Get %s returned %d bytes that differ from the %d set", key(i), len(item.Value), valueSize)
	}
	read := time.Since(start)

	stats, err := extstoreStats(address)
	g.Expect(err).NotTo(HaveOccurred())
	fmt.Printf("Extstore on the real node: memcached %s -m 64, file %d MiB on %s: %d values of %d KiB (%.1f MB, %.1f x -m) set in %v (%d retries), all %d read back identical in %v\n",
		stats["version"], fileMB, claim.Spec.VolumeName, keys, valueSize/1024, float64(keys*valueSize)/1e6,
		float64(keys*valueSize)/(64<<20), wrote.Round(time.Millisecond), retries, keys, read.Round(time.Millisecond))
	fmt.Printf("Extstore on the real node: extstore_objects_written=%s extstore_bytes_written=%s extstore_objects_read=%s "+
		"extstore_bytes_read=%s get_extstore=%s get_hits=%s evictions=%s extstore_pages_used=%s curr_items=%s\n",
		stats["extstore_objects_written"], stats["extstore_bytes_written"], stats["extstore_objects_read"],
		stats["extstore_bytes_read"], stats["get_extstore"], stats["get_hits"], stats["evictions"],
		stats["extstore_pages_used"], stats["curr_items"])
	g.Expect(stats.int("get_hits")).To(BeEquivalentTo(keys))
	g.Expect(stats.int("evictions")).To(BeZero())
	// The values memory could not hold were written to the file, and read
	// from it: at least the 5.1 times -m beyond memory itself.
	beyondMemory := int64(keys - 64<<20/valueSize)
	g.Expect(stats.int("extstore_objects_written")).To(BeNumerically(">=", beyondMemory))
	g.Expect(stats.int("extstore_objects_read")).To(BeNumerically(">=", beyondMemory))
	g.Expect(stats.int("get_extstore")).To(BeNumerically(">=", beyondMemory))
	g.Expect(stats.int("extstore_bytes_read")).To(BeNumerically(">=", beyondMemory*valueSize))

	var onDisk syscall.Stat_t
	g.Expect(syscall.Stat(onVolume, &onDisk)).To(Succeed())
	g.Expect(onDisk.Blocks*512).To(BeNumerically(">=", beyondMemory*valueSize), "the volume's file holds less than was written")

	// Not killed for its memory, nor restarted, and within its limit.
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(pod), pod)).To(Succeed())
	status := memcachedStatus(g, pod)
	g.Expect(status.RestartCount).To(BeZero())
	g.Expect(status.LastTerminationState.Terminated).To(BeNil())
	g.Expect(isReady(pod)).To(BeTrue())
	// The container's cgroup counts the file's page cache too, which the
	// kernel reclaims at the limit; memcached's own memory is its resident
	// set, which must stay below the limit.
	peak, oomKills, err := cgroupMemory(pid)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(oomKills).To(BeZero())
	resident, err := peakResident(pid)
	g.Expect(err).NotTo(HaveOccurred())
	fmt.Printf("Extstore on the real node: the file takes %d MB of the volume; memcached's resident memory peaked at %d MiB, "+
		"its container's cgroup with the page cache at %d MiB, of the %s limit; %d OOM kills, %d restarts\n",
		onDisk.Blocks*512/1000000, resident>>20, peak>>20, limit.String(), oomKills, status.RestartCount)
	g.Expect(resident).To(BeNumerically("<", limit.Value()))

	// A larger size that the volume already holds (the node's local
	// volumes have 10Gi): memcached gets the larger file on the same claim,
	// which is left as it is, in a new pod.
	grow := func(size string) *cachev1alpha1.Memcached {
		current := &cachev1alpha1.Memcached{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		patch := client.MergeFrom(current.DeepCopy())
		current.Spec.Extstore.Size = size
		g.Expect(k8sClient.Patch(t.Context(), current, patch)).To(Succeed())
		return current
	}
	grown := grow("4Gi")
	var replaced *corev1.Pod
	g.Eventually(func(g Gomega) {
		replaced = &corev1.Pod{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(pod), replaced)).To(Succeed())
		g.Expect(replaced.UID).NotTo(Equal(pod.UID))
		g.Expect(isReady(replaced)).To(BeTrue())
		g.Expect(memcachedContainer(g, replaced).Args).To(ContainElement(ContainSubstring(
			fmt.Sprintf("ext_path=%s/%s:%dm,", memcached.ExtstoreDir, memcached.ExtstoreFile, memcached.ExtstoreFileMB(&grown.Spec)))))
		g.Expect(replaced.Spec.Volumes).To(ContainElement(HaveField("PersistentVolumeClaim.ClaimName", claimName)))
	}).WithTimeout(2 * time.Minute).Should(Succeed())
	waitAvailable(t, mc, 1)
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(claim), claim)).To(Succeed())
	g.Expect(claim.Spec.Resources.Requests.Storage().String()).To(Equal("2Gi"))
	g.Expect(claim.Spec.VolumeName).To(Equal(volume.Name))
	pid, err = containerProcess(string(replaced.UID), "memcached")
	g.Expect(err).NotTo(HaveOccurred())
	cmdline, err = os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(cmdline)).To(ContainSubstring(fmt.Sprintf(":%dm,", memcached.ExtstoreFileMB(&grown.Spec))))
	address = net.JoinHostPort(replaced.Status.PodIP, strconv.Itoa(memcached.Port))
	c = newClient(address)
	g.Expect(c.Set(&memcache.Item{Key: "after-growth", Value: value(1)})).To(Succeed())

	// A size beyond the volume: local volumes cannot be expanded, so the
	// API server refuses to grow the claim; the Memcached reports it, and
	// the pod keeps running, with its file.
	grow("16Gi")
	var message string
	g.Eventually(func(g Gomega) {
		current := &cachev1alpha1.Memcached{}
		g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(mc), current)).To(Succeed())
		degraded := meta.FindStatusCondition(current.Status.Conditions, cachev1alpha1.ConditionDegraded)
		g.Expect(degraded).NotTo(BeNil())
		g.Expect(degraded.Reason).To(Equal("VolumeExpansionRefused"))
		g.Expect(degraded.Message).To(ContainSubstring("must support resize"))
		g.Expect(meta.IsStatusConditionTrue(current.Status.Conditions, cachev1alpha1.ConditionAvailable)).To(BeTrue())
		message = degraded.Message
	}).WithTimeout(time.Minute).Should(Succeed())
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(claim), claim)).To(Succeed())
	g.Expect(claim.Spec.Resources.Requests.Storage().String()).To(Equal("2Gi"))
	running := &corev1.Pod{}
	g.Expect(k8sClient.Get(t.Context(), client.ObjectKeyFromObject(pod), running)).To(Succeed())
	g.Expect(running.UID).To(Equal(replaced.UID))
	g.Expect(memcachedStatus(g, running).RestartCount).To(BeZero())
	item, err := c.Get("after-growth")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bytes.Equal(item.Value, value(1))).To(BeTrue())
	fmt.Printf("Extstore on the real node: 4Gi, which the 10Gi local volume holds, gave memcached a %d MiB file on the same claim; "+
		"16Gi was refused: %s\n", memcached.ExtstoreFileMB(&grown.Spec), message)
}

// peakResident returns the most memory process pid has had resident
// (VmHWM), in bytes.
func peakResident(pid int) (int64, error) {
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("reading the status of process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(status)) {
		if kB, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(kB), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM of process %d: %w", pid, err)
			}
			return n << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in the status of process %d", pid)
}

// memcachedContainer returns the memcached container of pod.
func memcachedContainer(g Gomega, pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == "memcached" {
			return &pod.Spec.Containers[i]
		}
	}
	g.Expect(pod.Spec.Containers).To(ContainElement(HaveField("Name", "memcached")))
	return nil
}

// memcachedStatus returns the status of the memcached container of pod.
func memcachedStatus(g Gomega, pod *corev1.Pod) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == "memcached" {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	g.Expect(pod.Status.ContainerStatuses).To(ContainElement(HaveField("Name", "memcached")))
	return nil
}

// memcachedStatsOf is memcached's general `stats`.
type memcachedStatsOf map[string]string

func (s memcachedStatsOf) int(name string) (int64, error) {
	n, err := strconv.ParseInt(s[name], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stats %s = %q: %w", name, s[name], err)
	}
	return n, nil
}

// extstoreStats returns the `stats` of the memcached at address.
func extstoreStats(address string) (memcachedStatsOf, error) {
	conn, err := net.DialTimeout("tcp", address, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", address, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("stats\r\n")); err != nil {
		return nil, fmt.Errorf("asking %s for stats: %w", address, err)
	}
	stats := memcachedStatsOf{}
	scanner := bufio.NewScanner(conn)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "END" {
			return stats, nil
		}
		if fields := strings.Fields(line); len(fields) == 3 && fields[0] == "STAT" {
			stats[fields[1]] = fields[2]
		}
	}
	return nil, fmt.Errorf("the stats of %s ended without END: %w", address, errors.Join(scanner.Err(), errors.New("connection closed")))
}

// cgroupMemory returns the most memory the memory cgroup of process pid,
// its container's, has used, and how many processes the kernel killed in it
// for memory: memory.max_usage_in_bytes and memory.oom_control's oom_kill
// with cgroup v1, memory.peak and memory.events' oom_kill with v2.
func cgroupMemory(pid int) (peak, oomKills int64, err error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the cgroups of process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(data)) {
		fields := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(fields) != 3 {
			continue
		}
		var dir, peakFile, eventsFile string
		switch {
		case strings.Contains(","+fields[1]+",", ",memory,"):
			dir, peakFile, eventsFile = filepath.Join("/sys/fs/cgroup/memory", fields[2]), "memory.max_usage_in_bytes", "memory.oom_control"
		case fields[0] == "0" && fields[1] == "":
			dir, peakFile, eventsFile = filepath.Join("/sys/fs/cgroup", fields[2]), "memory.peak", "memory.events"
		default:
			continue
		}
		value, err := os.ReadFile(filepath.Join(dir, peakFile))
		if err != nil {
			return 0, 0, fmt.Errorf("reading the memory cgroup of process %d: %w", pid, err)
		}
		if peak, err = strconv.ParseInt(strings.TrimSpace(string(value)), 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%s of process %d: %w", peakFile, pid, err)
		}
		events, err := os.ReadFile(filepath.Join(dir, eventsFile))
		if err != nil {
			return 0, 0, fmt.Errorf("reading the memory cgroup of process %d: %w", pid, err)
		}
		for event := range strings.Lines(string(events)) {
			if n, ok := strings.CutPrefix(strings.TrimSpace(event), "oom_kill "); ok {
				if oomKills, err = strconv.ParseInt(n, 10, 64); err != nil {
					return 0, 0, fmt.Errorf("%s of process %d: %w", eventsFile, pid, err)
				}
			}
		}
		return peak, oomKills, nil
	}
	return 0, 0, fmt.Errorf("process %d is in no memory cgroup: %s", pid, data)
}
