package memcached_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
	"example.com/memcached-operator/internal/memcached"
)

// projectSecret writes data into dir the way the kubelet projects a Secret
// volume: the files in a hidden timestamped directory, ..data pointing at it,
// and a link per key.
func projectSecret(t *testing.T, dir string, data map[string][]byte) {
	t.Helper()
	version := filepath.Join(dir, "..2026_11_29_10_00_00.000000001")
	if err := os.Mkdir(version, 0o755); err != nil {
		t.Fatal(err)
	}
	for key, value := range data {
		writeFile(t, filepath.Join(version, key), value)
	}
	if err := os.Symlink(filepath.Base(version), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for key := range data {
		if err := os.Symlink(filepath.Join("..data", key), filepath.Join(dir, key)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRealMemcachedAuth renders the auth file with the init container's
// script from a projected Secret, as the pod does, checks that it is the file
// the operator validated and digested, and runs real memcached with it: a
// client must log in before any command, and only with a pair of the Secret.
func TestRealMemcachedAuth(t *testing.T) {
	binary := memcachedBinary(t)
	users := map[string][]byte{"app": []byte("s3cret:pass"), "admin": []byte("other%s\\n")}
	usersDir, authDir := readableDir(t), readableDir(t)
	projectSecret(t, usersDir, users)
	dirs := map[string]string{memcached.UsersDir: usersDir, memcached.AuthDir: authDir}

	render := exec.Command("/bin/sh", "-c", replaceDirs(memcached.AuthScript(), dirs))
	if out, err := render.CombinedOutput(); err != nil {
		t.Fatalf("the auth script failed: %v\n%s", err, out)
	}
	rendered, err := os.ReadFile(filepath.Join(authDir, memcached.AuthFileKey))
	if err != nil {
		t.Fatal(err)
	}
	want, err := memcached.AuthFile(users)
	if err != nil {
		t.Fatal(err)
	}
	if string(rendered) != string(want) {
		t.Fatalf("the pod renders %q, the operator validated %q", rendered, want)
	}
	if info, err := os.Stat(filepath.Join(authDir, memcached.AuthFileKey)); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the auth file has mode %v (%v), want 0600", info.Mode(), err)
	}
	if err := os.Chmod(filepath.Join(authDir, memcached.AuthFileKey), 0o644); err != nil { // for nobody, as root
		t.Fatal(err)
	}

	args := withDirs(memcached.Args(&cachev1alpha1.MemcachedSpec{Auth: &cachev1alpha1.AuthSpec{SecretName: "users"}}), dirs)
	addr := startMemcached(t, binary, args).addr

	t.Run("a client that does not log in is refused", func(t *testing.T) {
		if got := dial(t, addr).send("set greeting 0 0 5\r\nhello"); !strings.HasPrefix(got, "CLIENT_ERROR") {
			t.Errorf("set without logging in answered %q, want a CLIENT_ERROR", got)
		}
	})
	t.Run("a wrong password is refused", func(t *testing.T) {
		if got := dial(t, addr).login("app", "wrong"); !strings.HasPrefix(got, "CLIENT_ERROR") {
			t.Errorf("logging in with a wrong password answered %q, want a CLIENT_ERROR", got)
		}
	})
	t.Run("each user of the Secret can log in and use the cache", func(t *testing.T) {
		for user, password := range users {
			c := dial(t, addr)
			if got := c.login(user, string(password)); got != "STORED" {
				t.Fatalf("logging in as %s answered %q, want STORED", user, got)
			}
			if got := c.send("set greeting 0 0 5\r\nhello"); got != "STORED" {
				t.Errorf("set as %s answered %q, want STORED", user, got)
			}
			if got := c.send("get greeting"); got != "VALUE greeting 0 5" {
				t.Errorf("get as %s answered %q, want the value", user, got)
			}
		}
	})
}
