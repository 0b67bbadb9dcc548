package memcached

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		spec cachev1alpha1.MemcachedSpec
		want []string
	}{
		{
			name: "defaults",
			spec: cachev1alpha1.MemcachedSpec{},
			want: []string{"-p", "11211", "-U", "0", "-m", "64", "-c", "1024", "-t", "4", "-I", "1024k"},
		},
		{
			name: "tuned",
			spec: cachev1alpha1.MemcachedSpec{MemoryMB: 512, MaxConnections: 4096, Threads: 8, MaxItemSizeKB: 2048},
			want: []string{"-p", "11211", "-U", "0", "-m", "512", "-c", "4096", "-t", "8", "-I", "2048k"},
		},
		{
			name: "verbose",
			spec: cachev1alpha1.MemcachedSpec{Verbosity: 2},
			want: []string{"-p", "11211", "-U", "0", "-m", "64", "-c", "1024", "-t", "4", "-I", "1024k", "-vv"},
		},
		{
			name: "extra arguments last",
			spec: cachev1alpha1.MemcachedSpec{Verbosity: 1, ExtraArgs: []string{"-o", "modern", "-R", "40"}},
			want: []string{"-p", "11211", "-U", "0", "-m", "64", "-c", "1024", "-t", "4", "-I", "1024k", "-v", "-o", "modern", "-R", "40"},
		},
		{
			name: "warm restart",
			spec: cachev1alpha1.MemcachedSpec{Workload: cachev1alpha1.WorkloadStatefulSet,
				WarmRestart: &cachev1alpha1.WarmRestartSpec{Enabled: true}},
			want: []string{"-p", "11211", "-U", "0", "-m", "64", "-c", "1024", "-t", "4", "-I", "1024k",
				"-e", "/var/lib/memcached/memory_file"},
		},
		{
			name: "auth and TLS with client certificates",
			spec: cachev1alpha1.MemcachedSpec{Auth: &cachev1alpha1.AuthSpec{SecretName: "users"},
				TLS: &cachev1alpha1.TLSSpec{SecretName: "cert", ClientCASecretName: "ca"}},
			want: []string{"-p", "11211", "-U", "0", "-m", "64", "-c", "1024", "-t", "4", "-I", "1024k",
				"-Y", "/run/memcached/auth/users", "-Z", "-o", "ssl_chain_cert=/etc/memcached/tls/tls.crt," +
					"ssl_key=/etc/memcached/tls/tls.key,ssl_ca_cert=/etc/memcached/client-ca/ca.crt,ssl_verify_mode=2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Args(&tt.spec); !slices.Equal(got, tt.want) {
				t.Errorf("Args() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	tests := []struct {
		memoryMB int32
		want     string
	}{
		{memoryMB: 0, want: "102Mi"}, // the default 64 + 6 + 32
		{memoryMB: 64, want: "102Mi"},
		{memoryMB: 1024, want: "1158Mi"},
	}
	for _, tt := range tests {
		got := MemoryLimit(&cachev1alpha1.MemcachedSpec{MemoryMB: tt.memoryMB})
		if got.String() != tt.want {
			t.Errorf("MemoryLimit(memoryMB=%d) = %s, want %s", tt.memoryMB, got.String(), tt.want)
		}
	}
}

func TestCheckMemoryLimit(t *testing.T) {
	withLimit := func(memoryMB int32, limit string) *cachev1alpha1.MemcachedSpec {
		return &cachev1alpha1.MemcachedSpec{MemoryMB: memoryMB, Resources: &cachev1alpha1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(limit)}}}
	}
	tests := []struct {
		name    string
		spec    *cachev1alpha1.MemcachedSpec
		wantErr string
	}{
		{name: "no resources", spec: &cachev1alpha1.MemcachedSpec{MemoryMB: 64}},
		{name: "no memory limit", spec: &cachev1alpha1.MemcachedSpec{MemoryMB: 64, Resources: &cachev1alpha1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}}},
		{name: "exactly enough", spec: withLimit(64, "102Mi")},
		{name: "plenty", spec: withLimit(64, "1Gi")},
		{name: "too small", spec: withLimit(64, "64Mi"),
			wantErr: `spec.resources.limits.memory: Invalid value: "64Mi": too small for memoryMB 64: memcached needs memoryMB + 10% + 32Mi = 102Mi`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckMemoryLimit(tt.spec)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckMemoryLimit() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("CheckMemoryLimit() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestAuthFile(t *testing.T) {
	tests := []struct {
		name    string
		users   map[string][]byte
		want    string
		wantErr string
	}{
		{name: "sorted lines", users: map[string][]byte{"b": []byte("pw2"), "a": []byte("p:w1")}, want: "a:p:w1\nb:pw2\n"},
		{name: "no users", users: map[string][]byte{}, wantErr: "no username/password pairs"},
		{name: "empty password", users: map[string][]byte{"a": nil}, wantErr: `the password of "a" is empty`},
		{name: "space in password", users: map[string][]byte{"a": []byte("p w")}, wantErr: "whitespace"},
		{name: "newline in password", users: map[string][]byte{"a": []byte("pw\nb:x")}, wantErr: "whitespace"},
		{name: "colon in username", users: map[string][]byte{"a:b": []byte("pw")}, wantErr: "colon"},
		{name: "hidden username", users: map[string][]byte{".a": []byte("pw")}, wantErr: "starts with a dot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AuthFile(tt.users)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				for _, pw := range tt.users {
					if len(pw) > 0 && strings.Contains(err.Error(), string(pw)) {
						t.Errorf("error %q shows a password", err)
					}
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("AuthFile = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
