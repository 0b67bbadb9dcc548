package memcached

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// extraArgs are the options spec.extraArgs may hold, decided from memcached's
// own option table (memcached.c: the getopt_long string, longopts[] and the
// -o sub-options). The operator guarantees that memcached listens on TCP
// 11211 only, with UDP off, TLS and authentication as the spec says, in the
// foreground as the container's user, and with the settings its own fields
// give; an option that could undo one of these is not on the list.
//
// memcached parses its arguments with getopt_long, which also accepts a
// unique prefix of a long option (--por=1 is --port=1), clusters of short
// options (-vU0), values attached to a short option (-U0) and values in the
// next argument whatever they look like. So that memcached reads exactly what
// this check read, only one form is accepted: a short option alone in its
// argument ("-R"), its value in the next argument ("20", not starting with
// "-"), or a long option written in full, with its value after "="
// ("--max-reqs-per-event=20").
//
// The tables below are also the source of the CRD's validation rules
// (cel.go, written into api/v1alpha1 by celgen), so that the API server
// refuses at admission what CheckExtraArgs refuses: a change to a table
// needs `make generate manifests`.

// option is an option spec.extraArgs may set.
type option struct {
	short byte   // 0 when it has only a long form
	long  string // "" when it has only a short form
	// value is what the value of an option that takes one must be; nil for
	// a flag.
	value valueRule
	// spec is what the value must be given the rest of the spec, if anything.
	spec specRule
}

var allowedOptions = []option{
	{short: 'M', long: "disable-evictions"},
	{short: 'C', long: "disable-cas"},
	{short: 'F', long: "disable-flush-all"},
	{short: 'X', long: "disable-dumping"},
	{short: 'W', long: "disable-watch"},
	{short: 'f', long: "slab-growth-factor", value: decimalRange{above: 1, atMost: 100,
		message: "the slab growth factor must be a decimal number above 1 and at most 100, such as 1.25"}},
	{short: 'n', long: "slab-min-size", value: intRange{1, 1 << 20}},
	{short: 'D', value: singleChar{message: "the key prefix delimiter must be one character"}},
	{short: 'R', long: "max-reqs-per-event", value: intRange{1, 1 << 20}},
	{short: 'b', long: "listen-backlog", value: intRange{1, 65535}},
	{short: 'B', long: "protocol", value: oneOf{choices: []string{"ascii", "binary", "auto"},
		message: "the protocol must be ascii, binary or auto"}, spec: asciiWithAuth{}},
	{short: 'o', long: "extended", value: subOptionList{}, spec: subOptionsWithSpec{}},
}

// name returns how messages name the option: its short form if it has one.
func (o option) name() string {
	if o.short != 0 {
		return "-" + string(o.short)
	}
	return "--" + o.long
}

// refusedOptions says, for each option of memcached that spec.extraArgs may
// not set, why, or which field sets it. Options memcached does not have are
// refused as unknown.
var refusedOptions = map[string]string{
	"p": "the operator sets the port to 11211",
	"U": "UDP stays off: memcached's UDP protocol has been used for reflection attacks",
	"m": "memory is set by spec.memoryMB",
	"c": "connections are set by spec.maxConnections",
	"t": "threads are set by spec.threads",
	"I": "the item size is set by spec.maxItemSizeKB",
	"v": "verbosity is set by spec.verbosity",
	"e": "the memory file is set by spec.warmRestart",
	"Y": "authentication is set by spec.auth",
	"S": "authentication is set by spec.auth",
	"Z": "TLS is set by spec.tls",
	"l": "the operator decides where memcached listens (-l can add listeners, also without TLS)",
	"s": "a unix socket would replace the TCP listener",
	"a": "memcached listens on TCP only, not on a unix socket",
	"A": "it lets any client shut memcached down",
	"d": "memcached runs in the foreground, as the container's process",
	"u": "memcached runs as the container's user",
	"P": "the root filesystem is read-only and nothing reads a pid file",
	"r": "memcached exits when it cannot raise the core file limit, and core files are written to a read-only filesystem",
	"k": "locking memory needs privileges the pod does not have",
	"L": "memcached exits on nodes without transparent huge pages",
	"N": "it makes stats settings crash memcached up to 1.6.39",
	"h": "memcached prints its help and exits",
	"i": "memcached prints its licence and exits",
	"V": "memcached prints its version and exits",
}

// longNames are memcached's long options, for messages about the options
// spec.extraArgs may not set.
var longNames = map[string]string{
	"port": "p", "udp-port": "U", "memory-limit": "m", "conn-limit": "c", "threads": "t",
	"max-item-size": "I", "verbose": "v", "memory-file": "e", "auth-file": "Y", "enable-sasl": "S",
	"enable-ssl": "Z", "listen": "l", "unix-socket": "s", "unix-mask": "a", "enable-shutdown": "A",
	"daemon": "d", "user": "u", "pidfile": "P", "enable-coredumps": "r", "lock-memory": "k",
	"enable-largepages": "L", "napi-ids": "N", "help": "h", "license": "i", "version": "V",
}

// extraArgsPath is the path of spec.extraArgs in messages.
var extraArgsPath = field.NewPath("spec", "extraArgs")

// CheckExtraArgs returns a *field.Error naming the first argument of
// spec.extraArgs that is not accepted, and why.
func CheckExtraArgs(spec *cachev1alpha1.MemcachedSpec) error {
	seen := map[byte]bool{}
	args := spec.ExtraArgs
	invalid := func(i int, value, detail string) error {
		return field.Invalid(extraArgsPath.Index(i), value, detail)
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		opt, value, hasValue, err := parseOption(arg)
		if err != nil {
			return invalid(i, arg, err.Error())
		}
		key := opt.short
		if key == 0 {
			key = opt.long[0]
		}
		if seen[key] {
			return invalid(i, arg, "the option is given twice")
		}
		seen[key] = true
		switch {
		case opt.value == nil && hasValue:
			return invalid(i, arg, "the option takes no value")
		case opt.value == nil:
			continue
		case !hasValue && strings.HasPrefix(arg, "--"):
			return invalid(i, arg, fmt.Sprintf("give the value after \"=\", as in %s=VALUE", arg))
		case !hasValue:
			if i+1 == len(args) {
				return invalid(i, arg, "the option needs a value, in the next element")
			}
			i++
			value = args[i]
			if strings.HasPrefix(value, "-") {
				return invalid(i, value, fmt.Sprintf("the value of %s may not start with \"-\"", arg))
			}
		}
		if !printable(value) {
			return invalid(i, value, "values may only hold printable ASCII characters without spaces")
		}
		if err := opt.value.check(value); err != nil {
			return invalid(i, value, err.Error())
		}
		if opt.spec == nil {
			continue
		}
		if err := opt.spec.check(spec, value); err != nil {
			return invalid(i, value, err.Error())
		}
	}
	return nil
}

// parseOption parses one argument that must be an option: "-X" or
// "--long-name[=value]".
func parseOption(arg string) (opt option, value string, hasValue bool, err error) {
	if !printable(arg) {
		return opt, "", false, fmt.Errorf("arguments may only hold printable ASCII characters without spaces")
	}
	if name, ok := strings.CutPrefix(arg, "--"); ok {
		name, value, hasValue = strings.Cut(name, "=")
		for _, o := range allowedOptions {
			if o.long != "" && o.long == name {
				return o, value, hasValue, nil
			}
		}
		if short, ok := longNames[name]; ok {
			return opt, "", false, fmt.Errorf("this option may not be set: %s", refusedOptions[short])
		}
		return opt, "", false, fmt.Errorf("not an option that may be set; long options must be written in full, and only " +
			"tuning options are accepted (see the Memcached API documentation)")
	}
	if len(arg) != 2 || arg[0] != '-' {
		if strings.HasPrefix(arg, "-") && len(arg) > 2 {
			return opt, "", false, fmt.Errorf("give each option in an argument of its own and its value in the next one, as in \"-R\", \"20\"")
		}
		return opt, "", false, fmt.Errorf("not an option: give options and their values, as in \"-R\", \"20\"")
	}
	for _, o := range allowedOptions {
		if o.short == arg[1] {
			return o, "", false, nil
		}
	}
	if reason, ok := refusedOptions[arg[1:]]; ok {
		return opt, "", false, fmt.Errorf("this option may not be set: %s", reason)
	}
	return opt, "", false, fmt.Errorf("not an option that may be set: only tuning options are accepted (see the Memcached API documentation)")
}

func printable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return true
}

// subOption is a -o option spec.extraArgs may set.
type subOption struct {
	// value is what the value must be; nil for a flag, which takes none.
	value valueRule
	// flag is set for an option that may be given without a value: a flag,
	// or one whose value is optional.
	flag bool
}

var (
	flagOption = subOption{flag: true}
	uint32Opt  = subOption{value: intRange{0, 1<<32 - 1}}
	// positiveDecimal is a decimal number above 0.
	positiveDecimal = subOption{value: decimalRange{above: 0, message: "must be a decimal number above 0"}}
)

var subOptions = map[string]subOption{
	"maxconns_fast":        flagOption,
	"no_maxconns_fast":     flagOption,
	"hashpower":            {value: intRange{12, 32}},
	"no_hashexpand":        flagOption,
	"slab_reassign":        flagOption,
	"no_slab_reassign":     flagOption,
	"slab_automove":        {value: intRange{0, 2}, flag: true},
	"no_slab_automove":     flagOption,
	"slab_automove_ratio":  {value: decimalRange{above: 0, atMost: 1, message: "must be a decimal number above 0 and at most 1"}},
	"slab_automove_window": {value: intRange{3, 1800}},
	"hash_algorithm":       {value: oneOf{choices: []string{"jenkins", "murmur3", "xxh3"}}},
	"lru_crawler":          flagOption,
	"no_lru_crawler":       flagOption,
	"lru_crawler_sleep":    {value: intRange{0, 1000000}},
	"lru_crawler_tocrawl":  uint32Opt,
	"lru_maintainer":       flagOption,
	"no_lru_maintainer":    flagOption,
	"hot_lru_pct":          {value: intRange{1, 79}},
	"warm_lru_pct":         {value: intRange{1, 79}},
	"hot_max_factor":       positiveDecimal,
	"warm_max_factor":      positiveDecimal,
	"temporary_ttl":        uint32Opt,
	"idle_timeout":         uint32Opt,
	"watcher_logbuf_size":  {value: intRange{0, 1 << 20}},
	"read_buf_mem_limit":   {value: intRange{0, 1 << 20}},
	"slab_sizes":           {value: slabSizes{smallest: 48, largest: 1 << 20, step: 8, most: 63}},
	"track_sizes":          flagOption,
	"modern":               flagOption,
	"no_modern":            flagOption,
	"no_chunked_items":     flagOption,
	"inline_ascii_resp":    flagOption,
	"no_inline_ascii_resp": flagOption,
}

// refusedSubOptions says why a -o option of memcached may not be set.
var refusedSubOptions = map[string]string{
	"ssl_":                    "TLS is set by spec.tls, and these options could weaken it",
	"ext_":                    "extstore is set by spec.extstore, on a volume of each pod's own",
	"proxy_":                  "memcached runs as a cache, not as a proxy",
	"drop_privileges":         "its seccomp filter kills memcached when it saves its memory file",
	"tail_repair_time":        "memcached documents it as very dangerous",
	"sock_cookie_id":          "it needs privileges the pod does not have",
	"slab_chunk_max":          "its unit and checks differ between memcached versions",
	"worker_logbuf_size":      "up to memcached 1.6.39 it overwrites slab_sizes",
	"slab_automove_freeratio": "it is set by spec.extstore.freeMemoryPercent",
}

// subOptionsRule is a rule on several -o options of one -o value at once.
type subOptionsRule interface {
	// check returns why the -o options values, by key, are refused, or nil.
	check(values map[string]string) error
	// celCheck returns a CEL check over the CEL list of strings elems, the
	// elements of a -o value.
	celCheck(elems string) celCheck
}

// subOptionsTogether are the combinations of -o options that make memcached
// exit as it starts.
var subOptionsTogether = []subOptionsRule{
	sumAtMost{keys: [2]string{"hot_lru_pct", "warm_lru_pct"}, most: 80,
		message: "-o hot_lru_pct and warm_lru_pct may add up to 80 at most"},
	excludes{key: "temporary_ttl", others: []string{"no_lru_maintainer", "no_modern"},
		message: "-o temporary_ttl needs the LRU maintainer"},
}

// subOptionList is the value of -o: comma-separated options, each a flag or
// key=value.
type subOptionList struct{}

func (subOptionList) check(value string) error {
	values := map[string]string{}
	for elem := range strings.SplitSeq(value, ",") {
		key, v, hasValue := strings.Cut(elem, "=")
		opt, ok := subOptions[key]
		if !ok {
			for prefix, reason := range refusedSubOptions {
				if strings.HasPrefix(key, prefix) {
					return fmt.Errorf("-o %s may not be set: %s", key, reason)
				}
			}
			return fmt.Errorf("-o %q is not an option that may be set (see the Memcached API documentation)", key)
		}
		if _, dup := values[key]; dup {
			return fmt.Errorf("-o %s is given twice", key)
		}
		switch {
		case opt.value == nil && hasValue:
			return fmt.Errorf("-o %s takes no value", key)
		case !opt.flag && (!hasValue || v == ""):
			return fmt.Errorf("-o %s needs a value, as in %s=VALUE", key, key)
		case hasValue && strings.Contains(v, "="):
			return fmt.Errorf("-o %s: the value may not hold \"=\"", key)
		case hasValue:
			if err := opt.value.check(v); err != nil {
				return fmt.Errorf("-o %s: %w", key, err)
			}
		}
		values[key] = v
	}
	for _, rule := range subOptionsTogether {
		if err := rule.check(values); err != nil {
			return err
		}
	}
	return nil
}

// sumAtMost refuses two -o options whose whole-number values add up to more
// than most.
type sumAtMost struct {
	keys    [2]string
	most    int
	message string
}

func (r sumAtMost) check(values map[string]string) error {
	first, hasFirst := values[r.keys[0]]
	second, hasSecond := values[r.keys[1]]
	a, _ := strconv.Atoi(first)
	b, _ := strconv.Atoi(second)
	if hasFirst && hasSecond && a+b > r.most {
		return fmt.Errorf("%s", r.message)
	}
	return nil
}

// excludes refuses the -o option key with any of others.
type excludes struct {
	key     string
	others  []string
	message string
}

func (r excludes) check(values map[string]string) error {
	if _, ok := values[r.key]; !ok {
		return nil
	}
	for _, other := range r.others {
		if _, ok := values[other]; ok {
			return fmt.Errorf("%s", r.message)
		}
	}
	return nil
}

// subOptionsWithSpec is what the -o options must be given the rest of the
// spec: -o no_chunked_items stores every item in one chunk, which memcached
// refuses to start with unless the largest item is a whole number of
// megabytes.
type subOptionsWithSpec struct{}

const (
	// unchunkedKey is the -o option that turns chunked items off.
	unchunkedKey = "no_chunked_items"
	// unchunkedItemSizeKB is what spec.maxItemSizeKB must be a multiple of
	// with unchunkedKey.
	unchunkedItemSizeKB = 1024
)

func (subOptionsWithSpec) check(spec *cachev1alpha1.MemcachedSpec, value string) error {
	for elem := range strings.SplitSeq(value, ",") {
		if key, _, _ := strings.Cut(elem, "="); key == unchunkedKey &&
			spec.GetMaxItemSizeKB()%unchunkedItemSizeKB != 0 {
			return fmt.Errorf("-o %s needs spec.maxItemSizeKB to be a multiple of %d", unchunkedKey, unchunkedItemSizeKB)
		}
	}
	return nil
}
