package memcached

import (
	"fmt"
	"path"
)

// The memcached pods run these shell scripts with /bin/sh of the memcached
// image (busybox in the alpine images, dash in the Debian ones). They use
// only what both have: sh, cat, printf, sed, date, sleep, kill, mv and rm.

// ImageEnv names the environment variable that holds the memcached image in
// the memcached container, for StartScript.
const ImageEnv = "MEMCACHED_IMAGE"

// AuthScript is the script of the init container that renders memcached's
// auth file into AuthDir from the Secret of spec.auth, mounted in UsersDir:
// one "username:password" line for each file, in the order of their names,
// as AuthFile renders it. Only memcached's user can read the file.
func AuthScript() string {
	out := path.Join(AuthDir, AuthFileKey)
	return fmt.Sprintf(`set -eu
umask 077
: > %[1]s.tmp
for f in %[2]s/*; do
	[ -f "$f" ] || continue
	printf '%%s:%%s\n' "${f##*/}" "$(cat "$f")" >> %[1]s.tmp
done
mv %[1]s.tmp %[1]s
`, out, UsersDir)
}

// StartScript starts memcached, with the arguments given to the script,
// when spec.warmRestart keeps its memory in a file. A memory file written by
// another image is removed first: memcached would read it without checking
// that its layout is the same. memcached also refuses to restore a memory
// file saved in the current second (stop_time in the metadata file), which a
// pod restarted at once would hit, so the script waits for the next second.
func StartScript() string {
	file := path.Join(MemoryFileDir, MemoryFile)
	return fmt.Sprintf(`set -eu
file=%[1]s
if [ -f "$file.image" ] && [ "$(cat "$file.image")" != "$%[2]s" ]; then
	rm -f "$file" "$file.meta"
fi
printf '%%s' "$%[2]s" > "$file.image"
stopped=$(sed -n 's/^Kstop_time //p' "$file.meta" 2>/dev/null || true)
waited=0
while [ -n "$stopped" ] && [ "$(date +%%s)" -le "$stopped" ] && [ "$waited" -lt 50 ]; do
	sleep 0.1
	waited=$((waited + 1))
done
exec memcached "$@"
`, file, ImageEnv)
}

// StopScript is the preStop hook of a memcached container whose memory is in
// a file: after delay seconds, in which clients and Service endpoints let
// go of the pod, it has memcached save its memory and stop (SIGUSR1; the
// SIGTERM that Kubernetes sends next would stop it without saving), and
// waits until it has.
func StopScript(delay int32) string {
	return fmt.Sprintf(`pid=1
sleep %d
kill -USR1 "$pid"
while kill -0 "$pid" 2>/dev/null; do
	sleep 0.1
done
`, delay)
}
