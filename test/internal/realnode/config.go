package realnode

import (
	"fmt"
	"os"
)

// writeConfig writes the configuration of containerd, the CNI plugins, the
// kubelet, kube-proxy and CoreDNS into the node's directory.
func (n *Node) writeConfig(kubeconfig string) error {
	files := map[string]string{
		"containerd.toml": fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
plugin_dir = ""

[grpc]
  address = %[3]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  # The kubelet asks for negative OOM scores, which only a process with
  # CAP_SYS_RESOURCE may set, as a machine that is a container lacks.
  restrict_oom_score_adj = true
  # The pods' network namespaces stay in the node's directory.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[6]q
    conf_dir = %[7]q
`, n.path("containerd/root"), n.path("containerd/state"), n.containerdSocket(), n.path("containerd/opt"),
			PauseImage, cniBinDir, n.path("cni")),

		// The pods' network: a bridge whose address is their gateway.
		// Hairpin mode lets a pod reach itself through its Service.
		"cni/10-realnode.conflist": fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "realnode",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, PodCIDR, n.path("cni-ipam")),

		// The kubelet of a machine that is itself a container, as kind's
		// nodes run theirs: cgroupfs (no systemd), cgroup v1 allowed, no
		// swap check, and no eviction or image collection on disk usage,
		// which is the machine's and not the node's to manage. The API
		// server reaches it, for logs and exec, without a client
		// certificate: only this network namespace can.
		"kubelet.yaml": fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://%[2]s
cgroupDriver: cgroupfs
cgroupRoot: %[5]s
failCgroupV1: false
failSwapOn: false
clusterDomain: %[3]s
clusterDNS:
- %[1]s
resolvConf: %[4]s
evictionHard:
  memory.available: "0%%"
  nodefs.available: "0%%"
  nodefs.inodesFree: "0%%"
  imagefs.available: "0%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`, Address, n.containerdSocket(), ClusterDomain, n.path("resolv.conf"), n.cgroupRoot),
		"resolv.conf": "",

		// Every connection to a Service is masqueraded: the pods share one
		// bridge, and replies from a pod to another must come back through
		// the node's NAT without br_netfilter. The conntrack limits are the
		// machine's, not the node's to set.
		"kube-proxy.yaml": fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %[1]q
mode: iptables
clusterCIDR: %[2]s
hostnameOverride: %[3]s
bindAddress: %[4]s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables:
  masqueradeAll: true
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, kubeconfig, PodCIDR, Name, Address),

		"Corefile": fmt.Sprintf(`.:53 {
    bind %[1]s
    errors
    kubernetes %[2]s in-addr.arpa ip6.arpa {
        kubeconfig %[3]s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
}
`, Address, ClusterDomain, kubeconfig),
	}
	for name, content := range files {
		if err := os.WriteFile(n.path(name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("failed to write %s: %w", name, err)
		}
	}
	return nil
}
