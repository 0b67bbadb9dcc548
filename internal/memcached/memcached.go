// Package memcached renders the memcached command line that the operator runs
// in every memcached container, and sizes the container's memory.
package memcached

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// Port is the TCP port memcached listens on.
const Port = 11211

// Where the memcached container finds the files of spec.auth, spec.tls and
// spec.warmRestart.
const (
	// UsersDir holds the Secret of spec.auth: a file per user, holding the
	// user's password.
	UsersDir = "/etc/memcached/users"
	// AuthDir holds AuthFileKey, the auth file the init container renders
	// from UsersDir.
	AuthDir     = "/run/memcached/auth"
	AuthFileKey = "users"
	// TLSDir holds tls.crt and tls.key of spec.tls.secretName.
	TLSDir = "/etc/memcached/tls"
	// ClientCADir holds ClientCAKey of spec.tls.clientCASecretName.
	ClientCADir = "/etc/memcached/client-ca"
	ClientCAKey = "ca.crt"
	// MemoryFileDir holds MemoryFile, the memory file of spec.warmRestart.
	MemoryFileDir = "/var/lib/memcached"
	MemoryFile    = "memory_file"
)

// sslVerifyRequire is memcached's ssl_verify_mode that refuses a client
// without a valid certificate.
const sslVerifyRequire = 2

// Args returns memcached's command-line arguments for spec.
//
// The port is always 11211 and UDP is always off (-U 0): memcached's UDP
// protocol has been abused for reflection attacks. With spec.auth, memcached
// reads its users from the auth file (-Y); with spec.tls, it accepts TLS only
// (-Z) and, with a client CA, requires a client certificate; with
// spec.warmRestart, it keeps its memory in a file (-e); with spec.extstore,
// it keeps values that memory cannot hold in a file on the pod's extstore
// volume (-o ext_path=...,ext_...). spec.extraArgs come
// last: CheckExtraArgs tells whether they may be used.
func Args(spec *cachev1alpha1.MemcachedSpec) []string {
	args := []string{
		"-p", strconv.Itoa(Port),
		"-U", "0",
		"-m", strconv.Itoa(int(spec.GetMemoryMB())),
		"-c", strconv.Itoa(int(spec.GetMaxConnections())),
		"-t", strconv.Itoa(int(spec.GetThreads())),
		"-I", strconv.Itoa(int(spec.GetMaxItemSizeKB())) + "k",
	}
	if spec.Verbosity > 0 {
		args = append(args, "-"+strings.Repeat("v", int(spec.Verbosity)))
	}
	if spec.Auth != nil {
		args = append(args, "-Y", path.Join(AuthDir, AuthFileKey))
	}
	if spec.WarmRestartEnabled() {
		args = append(args, "-e", path.Join(MemoryFileDir, MemoryFile))
	}
	if spec.ExtstoreEnabled() {
		args = append(args, "-o", extstoreOptions(spec))
	}
	if spec.TLS != nil {
		options := []string{
			"ssl_chain_cert=" + path.Join(TLSDir, corev1.TLSCertKey),
			"ssl_key=" + path.Join(TLSDir, corev1.TLSPrivateKeyKey),
		}
		if spec.TLS.ClientCASecretName != "" {
			options = append(options,
				"ssl_ca_cert="+path.Join(ClientCADir, ClientCAKey),
				"ssl_verify_mode="+strconv.Itoa(sslVerifyRequire))
		}
		args = append(args, "-Z", "-o", strings.Join(options, ","))
	}
	return append(args, spec.ExtraArgs...)
}

// What a memcached container needs besides memoryMB: memoryMB divided by
// memoryOverheadDivisor (10%), and memoryOverheadMi.
const (
	memoryOverheadDivisor = 10
	memoryOverheadMi      = 32
)

// MemoryLimit returns the memory a memcached container needs for spec:
// memoryMB for items plus 10% and 32Mi for connections, threads and the hash
// table, and, with spec.extstore, the buffers memcached allocates outside
// memoryMB, ExtstoreBuffersOutsideMemory (7) of extstore.writeBufferMB each:
// a write buffer per page bucket (extstore.c's extstore_init), all of which
// compaction can fill, and compaction's read buffer. The keys and
// headers of the items whose values are on flash stay in memoryMB. It is the
// container's limit when spec sets none.
func MemoryLimit(spec *cachev1alpha1.MemcachedSpec) resource.Quantity {
	mb := int64(spec.GetMemoryMB())
	return *resource.NewQuantity((mb+mb/memoryOverheadDivisor+memoryOverheadMi+extstoreMemoryMB(spec))*1024*1024, resource.BinarySI)
}

// CheckMemoryLimit returns a *field.Error if spec sets a memory limit smaller
// than what memcached needs for spec.memoryMB.
func CheckMemoryLimit(spec *cachev1alpha1.MemcachedSpec) error {
	if spec.Resources == nil {
		return nil
	}
	limit, ok := spec.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		return nil
	}
	if need := MemoryLimit(spec); limit.Cmp(need) < 0 {
		return field.Invalid(field.NewPath("spec", "resources", "limits", "memory"), limit.String(), fmt.Sprintf(
			"too small for memoryMB %d: memcached needs memoryMB + 10%% + 32Mi%s = %s; raise the limit, or leave it out to have it derived",
			spec.GetMemoryMB(), extstoreMemoryNote(spec), need.String()))
	}
	return nil
}

// MemoryFileSize returns the size of the volume that holds the memory file of
// spec.warmRestart: memoryMB, and room for memcached's metadata file.
func MemoryFileSize(spec *cachev1alpha1.MemcachedSpec) resource.Quantity {
	mb := int64(spec.GetMemoryMB())
	return *resource.NewQuantity((mb+mb/10+16)*1024*1024, resource.BinarySI)
}

// AuthFile renders memcached's auth file from the username/password pairs of
// users: one "username:password" line per user, sorted by username. It
// refuses what memcached would misread: no users, an empty username or
// password, a colon in a username or one that starts with a dot, and
// whitespace anywhere, as a client logs in with "username password". Errors name the user, never a password.
func AuthFile(users map[string][]byte) ([]byte, error) {
	if len(users) == 0 {
		return nil, fmt.Errorf("it has no username/password pairs")
	}
	names := make([]string, 0, len(users))
	for name := range users {
		names = append(names, name)
	}
	slices.Sort(names)
	var file bytes.Buffer
	for _, name := range names {
		password := users[name]
		switch {
		case strings.ContainsAny(name, ": \t\r\n"):
			return nil, fmt.Errorf("username %q has a colon or whitespace", name)
		case strings.HasPrefix(name, "."):
			// The pod reads each key as a file, and skips hidden ones.
			return nil, fmt.Errorf("username %q starts with a dot", name)
		case len(password) == 0:
			return nil, fmt.Errorf("the password of %q is empty", name)
		case bytes.ContainsAny(password, " \t\r\n"):
			return nil, fmt.Errorf("the password of %q has whitespace, which memcached does not accept", name)
		}
		fmt.Fprintf(&file, "%s:%s\n", name, password)
	}
	return file.Bytes(), nil
}
