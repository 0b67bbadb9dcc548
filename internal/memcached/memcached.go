// Package memcached renders the memcached command line that the operator runs
// in every memcached container.
package memcached

import "strconv"

const (
	// Port is the TCP port memcached listens on.
	Port = 11211

	// DefaultMemoryMB is the memory memcached uses for items (-m), in megabytes.
	DefaultMemoryMB = 64
)

// Args returns memcached's command-line arguments.
//
// UDP is always off (-U 0): memcached's UDP protocol has been abused for
// reflection attacks, and clients of this operator use TCP.
func Args() []string {
	return []string{
		"-p", strconv.Itoa(Port),
		"-U", "0",
		"-m", strconv.Itoa(DefaultMemoryMB),
	}
}
