package memcached

import (
	"fmt"
	"strings"
)

// This file reads a command line the way memcached does, to check what the
// operator renders against what memcached would do with it: glibc's
// getopt_long over memcached's option string and long options, and
// getsubopt over each -o value.

// memcachedOptString is memcached's getopt string (memcached.c, identical in
// 1.6.18 to 1.6.45).
const memcachedOptString = "a:AZp:s:U:m:Mc:khiVrvdl:u:P:f:n:t:D:LR:Cb:B:I:SFXWY:e:o:N:"

// memcachedLongOptions are memcached's longopts[]: the short option each
// long name stands for. verbose takes an optional value; the others take one
// when their short option does.
var memcachedLongOptions = []struct {
	name  string
	short byte
}{
	{"unix-mask", 'a'}, {"enable-shutdown", 'A'}, {"enable-ssl", 'Z'}, {"port", 'p'},
	{"unix-socket", 's'}, {"udp-port", 'U'}, {"memory-limit", 'm'}, {"disable-evictions", 'M'},
	{"conn-limit", 'c'}, {"lock-memory", 'k'}, {"help", 'h'}, {"license", 'i'}, {"version", 'V'},
	{"enable-coredumps", 'r'}, {"verbose", 'v'}, {"daemon", 'd'}, {"listen", 'l'}, {"user", 'u'},
	{"pidfile", 'P'}, {"slab-growth-factor", 'f'}, {"slab-min-size", 'n'}, {"threads", 't'},
	{"enable-largepages", 'L'}, {"max-reqs-per-event", 'R'}, {"disable-cas", 'C'},
	{"listen-backlog", 'b'}, {"protocol", 'B'}, {"max-item-size", 'I'}, {"enable-sasl", 'S'},
	{"disable-flush-all", 'F'}, {"disable-dumping", 'X'}, {"disable-watch", 'W'},
	{"auth-file", 'Y'}, {"memory-file", 'e'}, {"extended", 'o'}, {"napi-ids", 'N'},
}

// parsedOption is one option as getopt_long returns it to memcached.
type parsedOption struct {
	short byte
	value string
}

// parsedCommandLine is what memcached reads from its arguments.
type parsedCommandLine struct {
	options []parsedOption
	// ignored are the arguments getopt leaves as non-options, or those after
	// "--": memcached never reads them.
	ignored []string
}

// values returns the values of every occurrence of the short option c, in
// order.
func (p parsedCommandLine) values(c byte) []string {
	var out []string
	for _, o := range p.options {
		if o.short == c {
			out = append(out, o.value)
		}
	}
	return out
}

// subOptionKeys returns the keys of every -o sub-option, in order, as
// getsubopt splits them.
func (p parsedCommandLine) subOptionKeys() []string {
	var keys []string
	for _, v := range p.values('o') {
		if v == "" {
			continue
		}
		for elem := range strings.SplitSeq(v, ",") {
			key, _, _ := strings.Cut(elem, "=")
			keys = append(keys, key)
		}
	}
	return keys
}

// takesValue tells whether the short option c takes a value, and whether c
// is an option at all.
func takesValue(c byte) (value, ok bool) {
	if c == ':' {
		return false, false
	}
	i := strings.IndexByte(memcachedOptString, c)
	if i < 0 {
		return false, false
	}
	return i+1 < len(memcachedOptString) && memcachedOptString[i+1] == ':', true
}

// parseMemcachedArgs reads args the way glibc's getopt_long does for
// memcached, and returns an error where memcached would print "Illegal
// argument" and exit.
func parseMemcachedArgs(args []string) (parsedCommandLine, error) {
	var p parsedCommandLine
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			p.ignored = append(p.ignored, args[i+1:]...)
			return p, nil
		case len(arg) < 2 || arg[0] != '-':
			p.ignored = append(p.ignored, arg)
		case strings.HasPrefix(arg, "--"):
			opt, next, err := parseLongOption(args, i)
			if err != nil {
				return p, err
			}
			p.options = append(p.options, opt)
			i = next
		default:
			opts, next, err := parseShortOptions(args, i)
			if err != nil {
				return p, err
			}
			p.options = append(p.options, opts...)
			i = next
		}
	}
	return p, nil
}

// parseLongOption parses the long option args[i]: an exact name, or else a
// unique prefix of one. It returns the index of the last argument it read.
func parseLongOption(args []string, i int) (parsedOption, int, error) {
	name, value, hasValue := strings.Cut(args[i][2:], "=")
	var matches []byte
	for _, o := range memcachedLongOptions {
		if o.name == name {
			matches = []byte{o.short}
			break
		}
		if strings.HasPrefix(o.name, name) {
			matches = append(matches, o.short)
		}
	}
	if len(matches) != 1 {
		return parsedOption{}, i, fmt.Errorf("%q: unknown or ambiguous option", args[i])
	}
	short := matches[0]
	needsValue, _ := takesValue(short)
	switch {
	case short == 'v':
		// verbose: an optional value, only after "=".
	case !needsValue && hasValue:
		return parsedOption{}, i, fmt.Errorf("%q: the option takes no value", args[i])
	case needsValue && !hasValue:
		if i+1 == len(args) {
			return parsedOption{}, i, fmt.Errorf("%q: the option needs a value", args[i])
		}
		i++
		value = args[i]
	}
	return parsedOption{short: short, value: value}, i, nil
}

// parseShortOptions parses the cluster of short options args[i]. It returns
// the index of the last argument it read.
func parseShortOptions(args []string, i int) ([]parsedOption, int, error) {
	arg := args[i]
	var opts []parsedOption
	for j := 1; j < len(arg); j++ {
		c := arg[j]
		needsValue, ok := takesValue(c)
		switch {
		case !ok:
			return nil, i, fmt.Errorf("%q: unknown option -%c", arg, c)
		case !needsValue:
			opts = append(opts, parsedOption{short: c})
		case j+1 < len(arg):
			return append(opts, parsedOption{short: c, value: arg[j+1:]}), i, nil
		case i+1 == len(args):
			return nil, i, fmt.Errorf("%q: -%c needs a value", arg, c)
		default:
			return append(opts, parsedOption{short: c, value: args[i+1]}), i + 1, nil
		}
	}
	return opts, i, nil
}
