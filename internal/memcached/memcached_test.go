package memcached

import (
	"slices"
	"testing"
)

func TestArgs(t *testing.T) {
	args := Args()

	for _, flag := range [][]string{{"-p", "11211"}, {"-U", "0"}, {"-m", "64"}} {
		i := slices.Index(args, flag[0])
		if i < 0 || i+1 >= len(args) || args[i+1] != flag[1] {
			t.Errorf("Args() = %q, want %s %s", args, flag[0], flag[1])
		}
	}
}
