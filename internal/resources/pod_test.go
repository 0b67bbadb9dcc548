package resources

import (
	"maps"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

func podOf(t *testing.T, mc *cachev1alpha1.Memcached, in Inputs) corev1.PodTemplateSpec {
	t.Helper()
	if mc.Spec.Workload == cachev1alpha1.WorkloadStatefulSet {
		return statefulSetOf(t, mc, in).Spec.Template
	}
	return deploymentOf(t, mc, in).Spec.Template
}

func TestPodIsRestricted(t *testing.T) {
	for _, platform := range []bool{false, true} {
		mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
			s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"}
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert"}
		})
		in := inputsFor(mc)
		in.PlatformAssignsUID = platform
		pod := podOf(t, mc, in).Spec
		if !ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) ||
			pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("platform UID %v: pod security context %+v may run as root or without seccomp", platform, pod.SecurityContext)
		}
		uid := pod.SecurityContext.RunAsUser
		if platform && (uid != nil || pod.SecurityContext.FSGroup != nil) {
			t.Errorf("the platform assigns the user, yet the pod sets uid %v, fsGroup %v", uid, pod.SecurityContext.FSGroup)
		}
		if !platform && (ptr.Deref(uid, 0) != DefaultUID || ptr.Deref(pod.SecurityContext.FSGroup, 0) != DefaultUID) {
			t.Errorf("uid %v, fsGroup %v, want the image's %d: it names its user, so a non-root check needs the number",
				uid, pod.SecurityContext.FSGroup, DefaultUID)
		}
		for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
			sc := c.SecurityContext
			if sc == nil || ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("container %s has security context %+v, not restricted", c.Name, sc)
			}
		}
		if ptr.Deref(pod.AutomountServiceAccountToken, true) {
			t.Error("the pod mounts a service account token")
		}
	}
}

func TestPodRunsMemcached(t *testing.T) {
	mc := newMemcached("example-memcached", 3)
	pod := podOf(t, mc, inputsFor(mc)).Spec
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("containers %d, init containers %d; want memcached alone", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	if c.Image != DefaultImage || !slices.Equal(c.Command, []string{"memcached"}) || !slices.Equal(c.Args, memcached.Args(&mc.Spec)) {
		t.Errorf("runs %s %q %q, want %s memcached %q", c.Image, c.Command, c.Args, DefaultImage, memcached.Args(&mc.Spec))
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 11211 || c.Ports[0].Protocol != corev1.ProtocolTCP || c.Ports[0].Name != PortName {
		t.Errorf("ports = %+v, want TCP 11211 named %s", c.Ports, PortName)
	}
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if probe == nil || probe.TCPSocket == nil || probe.TCPSocket.Port != intstr.FromString(PortName) {
			t.Errorf("%s probe = %+v, want a TCP probe of port %s", name, probe, PortName)
		}
	}
	limit := c.Resources.Limits[corev1.ResourceMemory]
	if want := memcached.MemoryLimit(&mc.Spec); limit.Cmp(want) != 0 || c.Resources.Requests.Memory().Cmp(want) != 0 {
		t.Errorf("memory limit %s, request %s; want both %s", limit.String(), c.Resources.Requests.Memory(), want.String())
	}
}

func TestDerivedMemoryLimitIsNotBelowTheRequest(t *testing.T) {
	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.Resources = &cachev1alpha1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("4Gi")}}
	})
	c := podOf(t, mc, inputsFor(mc)).Spec.Containers[0]
	if limit := c.Resources.Limits[corev1.ResourceMemory]; limit.Cmp(resource.MustParse("4Gi")) != 0 {
		t.Errorf("memory limit %s, want the request, 4Gi: the API server refuses a limit below the request", limit.String())
	}
}

// TestMemcachedRequestsCPUUnlessTheSpecSays checks that the memcached
// container always requests CPU, so that a namespace whose ResourceQuota
// limits requests.cpu admits its pods, and is given no CPU limit the spec
// does not ask for.
func TestMemcachedRequestsCPUUnlessTheSpecSays(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		resources            *cachev1alpha1.ResourceRequirements
		wantRequest          string
		wantLimit            string // empty: no CPU limit
		wantMemoryLimitFixed string // empty: derived from memoryMB
	}{
		{name: "no resources", wantRequest: "50m"},
		{name: "memory only", resources: &cachev1alpha1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		}, wantRequest: "50m", wantMemoryLimitFixed: "1Gi"},
		{name: "a CPU request", resources: &cachev1alpha1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
		}, wantRequest: "2"},
		{name: "a CPU limit: the request is the limit, as Kubernetes defaults it", resources: &cachev1alpha1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m")},
		}, wantRequest: "20m", wantLimit: "20m"},
		{name: "both", resources: &cachev1alpha1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
		}, wantRequest: "100m", wantLimit: "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) { s.Resources = tc.resources })
			c := podOf(t, mc, inputsFor(mc)).Spec.Containers[0]
			request, ok := c.Resources.Requests[corev1.ResourceCPU]
			if !ok || request.Cmp(resource.MustParse(tc.wantRequest)) != 0 {
				t.Errorf("CPU request %v (set: %v), want %s", request.String(), ok, tc.wantRequest)
			}
			limit, ok := c.Resources.Limits[corev1.ResourceCPU]
			switch {
			case tc.wantLimit == "" && ok:
				t.Errorf("CPU limit %s, want none", limit.String())
			case tc.wantLimit != "" && (!ok || limit.Cmp(resource.MustParse(tc.wantLimit)) != 0):
				t.Errorf("CPU limit %s, want %s", limit.String(), tc.wantLimit)
			}
			wantMemory := memcached.MemoryLimit(&mc.Spec)
			if tc.wantMemoryLimitFixed != "" {
				wantMemory = resource.MustParse(tc.wantMemoryLimitFixed)
			}
			if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(wantMemory) != 0 {
				t.Errorf("memory limit %s, want %s", got.String(), wantMemory.String())
			}
		})
	}
}

func TestPodsWaitTheirPreStopDelayWithinTheGracePeriod(t *testing.T) {
	tests := []struct {
		name      string
		mc        *cachev1alpha1.Memcached
		wantGrace int64
		wantSleep int64  // 0: no sleep hook
		wantExec  string // a preStop exec script holds this
	}{
		{"defaults", withSpec(func(*cachev1alpha1.MemcachedSpec) {}), 30, 5, ""},
		{"configured", withSpec(func(s *cachev1alpha1.MemcachedSpec) {
			s.TerminationGracePeriodSeconds = ptr.To[int64](120)
			s.PreStopDelaySeconds = ptr.To[int32](20)
		}), 120, 20, ""},
		{"no delay", withSpec(func(s *cachev1alpha1.MemcachedSpec) { s.PreStopDelaySeconds = ptr.To[int32](0) }), 30, 0, ""},
		{"warm restart saves the memory file", withSpec(func(s *cachev1alpha1.MemcachedSpec) {
			s.Workload = cachev1alpha1.WorkloadStatefulSet
			s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
		}), 30, 0, `kill -USR1 "$pid"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := podOf(t, tt.mc, inputsFor(tt.mc)).Spec
			if got := ptr.Deref(pod.TerminationGracePeriodSeconds, 0); got != tt.wantGrace {
				t.Errorf("terminationGracePeriodSeconds = %d, want %d", got, tt.wantGrace)
			}
			c := pod.Containers[0]
			var sleep int64
			var exec string
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
				if s := c.Lifecycle.PreStop.Sleep; s != nil {
					sleep = s.Seconds
				}
				if e := c.Lifecycle.PreStop.Exec; e != nil {
					exec = strings.Join(e.Command, " ")
				}
			}
			if sleep != tt.wantSleep || !strings.Contains(exec, tt.wantExec) || (tt.wantExec == "" && exec != "") {
				t.Errorf("preStop sleeps %d s and runs %q; want %d s and %q", sleep, exec, tt.wantSleep, tt.wantExec)
			}
		})
	}
}

func TestWarmRestartPodsStartThroughTheScriptWithTheMemoryFile(t *testing.T) {
	mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
		s.Workload = cachev1alpha1.WorkloadStatefulSet
		s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
		s.Image = "memcached:1.6.39"
	})
	c := podOf(t, mc, inputsFor(mc)).Spec.Containers[0]
	if len(c.Command) != 4 || c.Command[0] != "/bin/sh" || c.Command[2] != memcached.StartScript() ||
		!slices.Equal(c.Args, memcached.Args(&mc.Spec)) || !slices.Contains(c.Args, "-e") {
		t.Errorf("runs %q %q, want the start script with memcached's arguments and -e", c.Command, c.Args)
	}
	if len(c.Env) != 1 || c.Env[0].Name != memcached.ImageEnv || c.Env[0].Value != "memcached:1.6.39" {
		t.Errorf("env %+v, want %s=memcached:1.6.39", c.Env, memcached.ImageEnv)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != MemoryFileClaim || c.VolumeMounts[0].MountPath != memcached.MemoryFileDir {
		t.Errorf("mounts %+v, want the memory file volume at %s", c.VolumeMounts, memcached.MemoryFileDir)
	}
}

func TestPodsSpreadOverNodesAndZonesUnlessTheSpecSaysOtherwise(t *testing.T) {
	rackSpread := corev1.TopologySpreadConstraint{MaxSkew: 2, TopologyKey: "rack", WhenUnsatisfiable: corev1.DoNotSchedule}
	tests := []struct {
		name             string
		mc               *cachev1alpha1.Memcached
		wantAntiAffinity bool
		wantSpreadKeys   []string
	}{
		{"defaults: soft anti-affinity over nodes, spread over zones",
			withSpec(func(*cachev1alpha1.MemcachedSpec) {}), true, []string{corev1.LabelTopologyZone}},
		{"empty affinity and spread turn both off",
			withSpec(func(s *cachev1alpha1.MemcachedSpec) {
				s.Affinity = &corev1.Affinity{}
				s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{}
			}), false, nil},
		{"own affinity and spread replace the defaults",
			withSpec(func(s *cachev1alpha1.MemcachedSpec) {
				s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}
				s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{rackSpread}
			}), false, []string{"rack"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := podOf(t, tt.mc, inputsFor(tt.mc)).Spec
			hasAntiAffinity := pod.Affinity != nil && pod.Affinity.PodAntiAffinity != nil
			if hasAntiAffinity != tt.wantAntiAffinity {
				t.Fatalf("pod anti-affinity %+v, want it: %v", pod.Affinity, tt.wantAntiAffinity)
			}
			if hasAntiAffinity {
				terms := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
				if len(terms) != 1 || terms[0].PodAffinityTerm.TopologyKey != corev1.LabelHostname ||
					pod.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
					t.Errorf("anti-affinity %+v, want one preferred term over %s", pod.Affinity.PodAntiAffinity, corev1.LabelHostname)
				}
			}
			var keys []string
			for _, c := range pod.TopologySpreadConstraints {
				keys = append(keys, c.TopologyKey)
				if c.TopologyKey == corev1.LabelTopologyZone && c.WhenUnsatisfiable != corev1.ScheduleAnyway {
					t.Errorf("the zone spread is %s, want ScheduleAnyway so that a cluster of one zone still schedules", c.WhenUnsatisfiable)
				}
			}
			if !slices.Equal(keys, tt.wantSpreadKeys) {
				t.Errorf("spread over %v, want %v", keys, tt.wantSpreadKeys)
			}
		})
	}
}

func TestPodReadsTheSecretsItNeeds(t *testing.T) {
	digests := SecretDigests{Auth: "authdigest", TLS: "tlsdigest"}
	tests := []struct {
		name            string
		mc              *cachev1alpha1.Memcached
		wantSecrets     map[string]string // volume → Secret
		wantMounts      []string          // memcached's read-only volumes
		wantAnnotations map[string]string
		wantInit        bool
	}{
		{"plain", withSpec(func(*cachev1alpha1.MemcachedSpec) {}), map[string]string{}, nil, nil, false},
		{"auth", withSpec(func(s *cachev1alpha1.MemcachedSpec) {
			s.Auth = &cachev1alpha1.AuthSpec{SecretName: "users"}
		}), map[string]string{"users": "users"}, []string{"auth"}, map[string]string{AuthDigestAnnotation: "authdigest"}, true},
		{"tls with client CA", withSpec(func(s *cachev1alpha1.MemcachedSpec) {
			s.TLS = &cachev1alpha1.TLSSpec{SecretName: "cert", ClientCASecretName: "ca"}
		}), map[string]string{"tls": "cert", "client-ca": "ca"}, []string{"tls", "client-ca"},
			map[string]string{TLSDigestAnnotation: "tlsdigest"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := inputsFor(tt.mc)
			in.Digests = digests
			template := podOf(t, tt.mc, in)
			pod := template.Spec
			secrets := map[string]string{}
			for _, v := range pod.Volumes {
				switch {
				case v.Secret != nil && ptr.Deref(v.Secret.DefaultMode, 0) == 0o440:
					secrets[v.Name] = v.Secret.SecretName
				case v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory && v.Name == "auth":
				default:
					t.Errorf("volume %s is neither a Secret readable by the pod's group only nor the auth file's memory: %+v",
						v.Name, v.VolumeSource)
				}
			}
			if !maps.Equal(secrets, tt.wantSecrets) {
				t.Errorf("Secret volumes %v, want %v", secrets, tt.wantSecrets)
			}
			var mounts []string
			for _, m := range pod.Containers[0].VolumeMounts {
				if !m.ReadOnly {
					t.Errorf("memcached mounts %s writable", m.Name)
				}
				mounts = append(mounts, m.Name)
			}
			if !slices.Equal(mounts, tt.wantMounts) {
				t.Errorf("memcached mounts %v, want %v", mounts, tt.wantMounts)
			}
			annotations := maps.Clone(template.Annotations)
			delete(annotations, TemplateHashAnnotation)
			if len(annotations)+len(tt.wantAnnotations) > 0 && !maps.Equal(annotations, tt.wantAnnotations) {
				t.Errorf("annotations %v, want %v", annotations, tt.wantAnnotations)
			}
			if !tt.wantInit {
				if len(pod.InitContainers) != 0 {
					t.Errorf("init containers %+v, want none", pod.InitContainers)
				}
				return
			}
			if len(pod.InitContainers) != 1 {
				t.Fatalf("init containers %+v, want the one rendering the auth file", pod.InitContainers)
			}
			init := pod.InitContainers[0]
			if init.Image != pod.Containers[0].Image || !slices.Equal(init.Command, []string{"/bin/sh", "-c", memcached.AuthScript()}) {
				t.Errorf("init container runs %s %q, want the memcached image's shell with the auth script", init.Image, init.Command)
			}
		})
	}
}

func TestImagesOfAMemcachedThatNamesNone(t *testing.T) {
	mirror := Images{Memcached: "mirror.example.com/memcached:1.6.39", Exporter: "mirror.example.com/exporter:v0.15.4"}
	tests := []struct {
		name                        string
		spec                        func(*cachev1alpha1.MemcachedSpec)
		images                      Images
		wantMemcached, wantExporter string
	}{
		{name: "the built-in defaults", wantMemcached: DefaultImage, wantExporter: DefaultExporterImage},
		{name: "the operator's", images: mirror, wantMemcached: mirror.Memcached, wantExporter: mirror.Exporter},
		{name: "the Memcached's own win", images: mirror,
			spec: func(s *cachev1alpha1.MemcachedSpec) {
				s.Image, s.Monitoring.ExporterImage = "own/memcached:1", "own/exporter:1"
			},
			wantMemcached: "own/memcached:1", wantExporter: "own/exporter:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
				s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
				s.WarmRestart = &cachev1alpha1.WarmRestartSpec{Enabled: true}
				s.Workload = cachev1alpha1.WorkloadStatefulSet
				if tt.spec != nil {
					tt.spec(s)
				}
			})
			in := inputsFor(mc)
			in.Images = tt.images
			pod := podOf(t, mc, in).Spec
			c := pod.Containers[0]
			var env string
			for _, e := range c.Env {
				if e.Name == memcached.ImageEnv {
					env = e.Value
				}
			}
			if c.Image != tt.wantMemcached || env != tt.wantMemcached {
				t.Errorf("memcached runs %s with %s=%s, want %s", c.Image, memcached.ImageEnv, env, tt.wantMemcached)
			}
			exporter := object[appsv1.Deployment](t, Build(mc, in), DeploymentKind, "mc-exporter")
			if got := exporter.Spec.Template.Spec.Containers[0].Image; got != tt.wantExporter {
				t.Errorf("the exporter runs %s, want %s", got, tt.wantExporter)
			}
		})
	}
}

func TestImagePullSecretsReachEveryPod(t *testing.T) {
	for _, tt := range []struct {
		name    string
		secrets []cachev1alpha1.ImagePullSecret
		want    []corev1.LocalObjectReference
	}{
		{name: "none"},
		{name: "some, in order", secrets: []cachev1alpha1.ImagePullSecret{{Name: "mirror"}, {Name: "backup-mirror"}},
			want: []corev1.LocalObjectReference{{Name: "mirror"}, {Name: "backup-mirror"}}},
	} {
		for _, workload := range []cachev1alpha1.WorkloadKind{cachev1alpha1.WorkloadDeployment, cachev1alpha1.WorkloadStatefulSet} {
			t.Run(tt.name+"/"+string(workload), func(t *testing.T) {
				mc := withSpec(func(s *cachev1alpha1.MemcachedSpec) {
					s.Workload = workload
					s.ImagePullSecrets = tt.secrets
					s.Monitoring = &cachev1alpha1.MonitoringSpec{Enabled: true}
				})
				if got := podOf(t, mc, inputsFor(mc)).Spec.ImagePullSecrets; !slices.Equal(got, tt.want) {
					t.Errorf("memcached pods pull with %v, want %v", got, tt.want)
				}
				exporter := object[appsv1.Deployment](t, Build(mc, inputsFor(mc)), DeploymentKind, "mc-exporter")
				if got := exporter.Spec.Template.Spec.ImagePullSecrets; !slices.Equal(got, tt.want) {
					t.Errorf("the exporter pulls with %v, want %v", got, tt.want)
				}
			})
		}
	}
}
