// Package memcached_test runs the memcached command lines, files and
// scripts that the operator renders with a real memcached binary and real
// clients, on loopback.
package memcached_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/memcached-operator/internal/memcached"
)

// memcachedBinary returns the memcached that make test provides
// (MEMCACHED_BINARY), or the one on PATH.
func memcachedBinary(t *testing.T) string {
	t.Helper()
	if binary := os.Getenv("MEMCACHED_BINARY"); binary != "" {
		return binary
	}
	binary, err := exec.LookPath("memcached")
	if err != nil {
		t.Fatal("no memcached: run these tests with 'make test', which provides Debian's memcached, or set MEMCACHED_BINARY")
	}
	return binary
}

// server is a memcached process of a test.
type server struct {
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
	output *strings.Builder
}

// localArgs returns args with the port swapped for a free loopback one,
// listening on loopback only, and, as root, dropping to nobody (memcached
// refuses to run as root; in its container it runs as uid 11211).
func localArgs(t *testing.T, args []string) ([]string, int) {
	t.Helper()
	port := freePort(t)
	args = slices.Clone(args)
	i := slices.Index(args, "-p")
	if i < 0 || args[i+1] != strconv.Itoa(memcached.Port) {
		t.Fatalf("the rendered arguments %q do not set -p %d", args, memcached.Port)
	}
	args[i+1] = strconv.Itoa(port)
	args = append(args, "-l", "127.0.0.1")
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	return args, port
}

// startMemcached runs memcached with args made local, and returns it once
// it accepts connections.
func startMemcached(t *testing.T, binary string, args []string) *server {
	t.Helper()
	args, port := localArgs(t, args)
	return start(t, exec.Command(binary, args...), port)
}

// startScript runs a start script the way the container does, /bin/sh -c
// with memcached's arguments, made local, and the memcached of binary first
// on PATH.
func startScript(t *testing.T, binary, script string, args []string, env ...string) *server {
	t.Helper()
	args, port := localArgs(t, args)
	bin := t.TempDir()
	// A script that execs binary, so that memcached keeps the script's pid.
	wrapper := fmt.Sprintf("#!/bin/sh\nexec %q \"$@\"\n", binary)
	if err := os.WriteFile(filepath.Join(bin, "memcached"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "memcached"}, args...)...)
	cmd.Env = append(os.Environ(), append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))...)
	return start(t, cmd, port)
}

func start(t *testing.T, cmd *exec.Cmd, port int) *server {
	t.Helper()
	s := &server{cmd: cmd, exited: make(chan struct{}), output: &strings.Builder{},
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	cmd.Stdout, cmd.Stderr = s.output, s.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("Failed to start memcached: %v", err)
	}
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.exited
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			conn.Close()
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("memcached %q exited: %v\n%s", cmd.Args, waitErr, s.output.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached %q did not accept connections on %s: %v\n%s", cmd.Args, s.addr, err, s.output.String())
		}
	}
}

// statsSettings returns memcached's `stats settings`.
func statsSettings(t *testing.T, addr string) map[string]string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprint(conn, "stats settings\r\n"); err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	scanner := bufio.NewScanner(conn)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "END" {
			return settings
		}
		if fields := strings.Fields(line); len(fields) == 3 && fields[0] == "STAT" {
			settings[fields[1]] = fields[2]
		}
	}
	t.Fatalf("stats settings ended without END: %v", scanner.Err())
	return nil
}

// withDirs returns args with the directories the pod mounts volumes in
// replaced by the test's.
func withDirs(args []string, dirs map[string]string) []string {
	out := make([]string, len(args))
	for i, arg := range args {
		out[i] = replaceDirs(arg, dirs)
	}
	return out
}

// replaceDirs returns text with the directories of dirs replaced.
func replaceDirs(text string, dirs map[string]string) string {
	for from, to := range dirs {
		text = strings.ReplaceAll(text, from+"/", to+"/")
		text = strings.ReplaceAll(text, from+" ", to+" ")
		text = strings.ReplaceAll(text, from+"\n", to+"\n")
	}
	return text
}

// readableDir returns a temporary directory that memcached can read and
// write when it drops root to nobody.
func readableDir(t *testing.T) string {
	t.Helper()
	// Not t.TempDir: its parent is private to the test's user.
	dir, err := os.MkdirTemp("", "memcached-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// textConn speaks memcached's text protocol on one connection.
type textConn struct {
	t      *testing.T
	conn   net.Conn
	reader *bufio.Reader
}

func dial(t *testing.T, addr string) *textConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &textConn{t: t, conn: conn, reader: bufio.NewReader(conn)}
}

// send sends a command and returns the first line of the answer, or the
// error that ended the connection.
func (c *textConn) send(command string) string {
	c.t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "%s\r\n", command); err != nil {
		return err.Error()
	}
	line, err := c.reader.ReadString('\n')
	if err != nil {
		return err.Error()
	}
	return strings.TrimRight(line, "\r\n")
}

// login authenticates as memcached's text protocol has it: a set whose value
// is "username password".
func (c *textConn) login(user, password string) string {
	credentials := user + " " + password
	return c.send(fmt.Sprintf("set auth 0 0 %d\r\n%s", len(credentials), credentials))
}

func plainVersion(t *testing.T, addr string) string {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	return (&textConn{t: t, conn: conn, reader: bufio.NewReader(conn)}).send("version")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
