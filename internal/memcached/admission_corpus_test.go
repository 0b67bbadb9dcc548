package memcached

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// admissionCorpus returns the specs of TestAdmissionAgreesWithTheOperator:
// every list of extra arguments of the corpus with auth on and off and
// maxItemSizeKB 1024 (the default), 1536 and 2048, and memory limits around
// what each memoryMB needs.
func admissionCorpus(t *testing.T) []admissionCase {
	t.Helper()
	argLists := make([]admissionArgs, 0, 4096)
	for _, file := range []string{"extraargs_test.go", "fuzz_test.go", "memcached_test.go",
		filepath.Join("..", "..", "test", "memcached", "args_test.go")} {
		argLists = append(argLists, argsInTestFile(t, file)...)
	}
	argLists = append(argLists, fuzzCorpusFiles(t)...)
	argLists = append(argLists, generatedArgs()...)

	type variant struct {
		auth       bool
		itemSizeKB int64
	}
	variants := make([]variant, 0, 6)
	for _, auth := range []bool{false, true} {
		for _, itemSizeKB := range []int64{0, 1536, 2048} {
			variants = append(variants, variant{auth, itemSizeKB})
		}
	}
	seen := map[string]bool{}
	var cases []admissionCase
	for i, a := range argLists {
		key := strings.Join(a.args, "\x00")
		if seen[key] {
			continue
		}
		seen[key] = true
		// The options whose rules read other fields are tried with every
		// variant of the spec, the others with one in turn.
		vs := variants[i%len(variants) : i%len(variants)+1]
		if strings.Contains(key, "-B") || strings.Contains(key, "--pro") || strings.Contains(key, "no_chunked_items") {
			vs = variants
		}
		for _, v := range vs {
			spec := map[string]any{"size": int64(1), "extraArgs": toAny(a.args)}
			if v.auth {
				spec["auth"] = map[string]any{"secretName": "users"}
			}
			if v.itemSizeKB != 0 {
				spec["maxItemSizeKB"] = v.itemSizeKB
			}
			cases = append(cases, admissionCase{source: a.source, spec: spec})
		}
	}
	cases = append(cases, memoryCases(t)...)
	return cases
}

// admissionArgs is a list of extra arguments, and where it comes from.
type admissionArgs struct {
	source string
	args   []string
}

func toAny(args []string) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = a
	}
	return out
}

// argsInTestFile returns every list of string literals in the Go file name,
// such as the extra arguments of test cases, and each string literal of the
// seeds of FuzzCheckExtraArgs split at newlines as the fuzz test splits it.
func argsInTestFile(t *testing.T, name string) []admissionArgs {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
	if err != nil {
		t.Fatalf("reading the inputs of %s: %v", name, err)
	}
	var out []admissionArgs
	ast.Inspect(file, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok || len(lit.Elts) == 0 {
			return true
		}
		var args []string
		for _, e := range lit.Elts {
			s, ok := e.(*ast.BasicLit)
			if !ok || s.Kind != token.STRING {
				return true
			}
			v, err := strconv.Unquote(s.Value)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			args = append(args, v)
		}
		out = append(out, admissionArgs{source: name, args: args})
		for _, a := range args {
			if strings.Contains(a, "\n") {
				out = append(out, admissionArgs{source: name + " (fuzz seed)", args: strings.Split(a, "\n")})
			}
		}
		return true
	})
	if len(out) == 0 {
		t.Fatalf("%s has no lists of strings", name)
	}
	// What args_test.go builds from a free port.
	return append(out, admissionArgs{source: name, args: []string{"--udp=11211"}})
}

// fuzzCorpusFiles returns the extra arguments of the inputs in
// testdata/fuzz/FuzzCheckExtraArgs, as the fuzz test splits them.
func fuzzCorpusFiles(t *testing.T) []admissionArgs {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzCheckExtraArgs", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []admissionArgs
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		scanner := bufio.NewScanner(f)
		for scanner.Scan() {
			if quoted, ok := strings.CutPrefix(scanner.Text(), "string("); ok {
				s, err := strconv.Unquote(strings.TrimSuffix(quoted, ")"))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				out = append(out, admissionArgs{source: name, args: strings.Split(s, "\n")})
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// generatedArgs returns lists of extra arguments made from the option
// tables: every option in each form memcached reads, with values at and
// beyond their bounds, the options that are refused, prefixes of long
// options, clusters, every -o option and their combinations, and random
// lists of these, from a fixed seed.
func generatedArgs() []admissionArgs {
	var out []admissionArgs
	add := func(source string, args ...string) { out = append(out, admissionArgs{source: source, args: args}) }

	var valid, broken [][]string
	for _, o := range allowedOptions {
		short, long := o.name(), "--"+o.long
		if o.value == nil {
			add("flag", short)
			add("flag", long)
			add("flag with a value", long+"=1")
			add("flag with a value", short, "1")
			add("flag twice", short, long)
			valid = append(valid, []string{short}, []string{long})
			continue
		}
		add("value missing", short)
		add("value missing", short, "-R")
		add("value not after =", long, "1")
		for _, v := range sampleValues(o.value) {
			add("value", short, v)
			add("attached value", short+v)
			add("value", long+"="+v)
			add("value twice", short, v, long+"="+v)
			if o.value.check(v) == nil && v != "" {
				valid = append(valid, []string{short, v}, []string{long + "=" + v})
			} else {
				broken = append(broken, []string{short, v})
			}
		}
	}
	for _, short := range slices.Sorted(maps.Keys(refusedOptions)) {
		add("refused", "-"+short)
		add("refused", "-"+short, "1")
		add("refused attached", "-"+short+"1")
		add("refused in a cluster", "-M"+short)
		broken = append(broken, []string{"-" + short, "0"})
	}
	longs := slices.Sorted(maps.Keys(longNames))
	for _, o := range allowedOptions {
		if o.long != "" {
			longs = append(longs, o.long)
		}
	}
	for _, long := range longs {
		add("refused or allowed long", "--"+long)
		add("refused or allowed long", "--"+long+"=1")
		for i := 1; i < len(long); i++ {
			add("prefix", "--"+long[:i])
			add("prefix", "--"+long[:i]+"=1")
		}
		broken = append(broken, []string{"--" + long[:len(long)/2] + "=0"})
	}
	for _, cluster := range []string{"-MC", "-vU0", "-pU0", "-RM", "-MR", "-U0", "-R20", "-o", "-oo", "--", "-", "---", "-=", "--=1", "-M=1"} {
		add("cluster", cluster)
		add("cluster", "-M", cluster)
	}
	for _, a := range []string{"foo", "20", "=", "modern", "-R 20", " ", "", "\t", "é"} {
		add("not an option", a)
		add("not an option", "-M", a)
	}

	subValid, subBroken := subOptionValues()
	for _, v := range slices.Concat(subValid, subBroken) {
		add("-o", "-o", v)
		add("--extended", "--extended="+v)
	}
	for _, v := range subValid {
		valid = append(valid, []string{"-o", v})
	}
	for _, v := range subBroken {
		broken = append(broken, []string{"-o", v})
	}

	rng := rand.New(rand.NewPCG(20260105, 11211))
	for range 500 {
		var args []string
		for range 1 + rng.IntN(4) {
			if rng.IntN(4) == 0 {
				args = append(args, broken[rng.IntN(len(broken))]...)
			} else {
				args = append(args, valid[rng.IntN(len(valid))]...)
			}
		}
		add("random", args...)
	}
	return append(out, everyOption(rng, subValid)...)
}

// everyOption returns lists of valid arguments that give every option once,
// in random orders.
func everyOption(rng *rand.Rand, subValid []string) []admissionArgs {
	const lists = 20
	out := make([]admissionArgs, 0, lists)
	for range lists {
		var args []string
		for _, i := range rng.Perm(len(allowedOptions)) {
			o := allowedOptions[i]
			switch {
			case o.value == nil:
				args = append(args, o.name())
			case o.short == 'o':
				args = append(args, "-o", subValid[rng.IntN(len(subValid))])
			default:
				for _, v := range sampleValues(o.value) {
					if o.value.check(v) == nil && (o.short != 'B' || v == "ascii") {
						args = append(args, o.name(), v)
						break
					}
				}
			}
		}
		out = append(out, admissionArgs{source: "every option", args: args})
	}
	return out
}

// sampleValues returns values for rule at and beyond its bounds, and values
// that are no such value.
func sampleValues(rule valueRule) []string {
	switch r := rule.(type) {
	case intRange:
		lo, hi := r.lowest, r.highest
		return []string{fmt.Sprint(lo - 1), fmt.Sprint(lo), fmt.Sprint(hi), fmt.Sprint(hi + 1), "+" + fmt.Sprint(hi), "0" + fmt.Sprint(lo),
			"-0", "x", "1e3", "1.0", "99999999999999999999", strings.Repeat("0", 30) + fmt.Sprint(hi), "0x10", "1_0"}
	case decimalRange:
		return []string{"0", "0.5", "1", "1.0", "1.000001", "1.25", "2", "99.999999", "100", "100.000001", "1000", "1.1234567",
			"1e3", ".5", "5.", "+2", "-1", "0.0000001"}
	case oneOf:
		return append(slices.Clone(r.choices), strings.ToUpper(r.choices[0]), "x", r.choices[0]+","+r.choices[0])
	case singleChar:
		return []string{":", "::", "=", ",", "x", "-"}
	case slabSizes:
		return []string{"96-192-384", "48", "47", "96-104", "96-105", "1048576", "1048577", "96--192", "96-", "+96-+200", "0096-0200", "x"}
	}
	return []string{"1", "x"}
}

// subOptionValues returns values of -o that CheckExtraArgs accepts and
// values it refuses, from the sub-option tables.
func subOptionValues() (valid, broken []string) {
	for _, name := range slices.Sorted(maps.Keys(subOptions)) {
		o := subOptions[name]
		values := []string{name, name + "=", name + "=1", name + "=1=1", name + "," + name, "modern," + name, name + ",modern"}
		if o.value != nil {
			for _, v := range sampleValues(o.value) {
				values = append(values, name+"="+v, "lru_crawler,"+name+"="+v)
			}
		}
		for _, v := range values {
			if (subOptionList{}).check(v) == nil {
				valid = append(valid, v)
			} else {
				broken = append(broken, v)
			}
		}
	}
	for _, prefix := range slices.Sorted(maps.Keys(refusedSubOptions)) {
		broken = append(broken, prefix+"x", prefix+"x=1", "modern,"+prefix+"x=1", prefix)
	}
	valid = append(valid, "modern,lru_crawler,hash_algorithm=murmur3,slab_automove=2,hashpower=16",
		"hot_lru_pct=40,warm_lru_pct=40", "hot_lru_pct=79,warm_lru_pct=1", "temporary_ttl=10,modern", "temporary_ttl=10,no_lru_crawler",
		"no_chunked_items", "modern,no_chunked_items", "slab_sizes="+slabList(63, 48, 9))
	broken = append(broken, "hot_lru_pct=40,warm_lru_pct=41", "hot_lru_pct=79,warm_lru_pct=2", "warm_lru_pct=60,hot_lru_pct=+21",
		"temporary_ttl=10,no_modern", "no_lru_maintainer,temporary_ttl=1", "Modern", "modern,,lru_crawler", ",", "modern,",
		"slab_sizes="+slabList(64, 48, 9), "slab_sizes="+slabList(3, 96, 8), "=1", "hashpower=20,hashpower=21")
	return valid, broken
}

// slabList returns n slab sizes from first, step apart.
func slabList(n int, first, step int64) string {
	sizes := make([]string, n)
	for i := range sizes {
		sizes[i] = strconv.FormatInt(first+int64(i)*step, 10)
	}
	return strings.Join(sizes, "-")
}

// memoryCases returns specs with memory limits around what memoryMB needs,
// as strings and as whole numbers, and with other limits.
func memoryCases(t *testing.T) []admissionCase {
	t.Helper()
	var cases []admissionCase
	for _, mb := range []int64{0, 1, 2, 63, 64, 100, 1000, 1024, 65536, 1048576} {
		m := mb
		if m == 0 {
			m = cachev1alpha1.DefaultMemoryMB
		}
		needMi := m + m/10 + 32
		need := needMi << 20
		limits := []any{need - 1, need, need + 1, int64(0), int64(1) << 40,
			fmt.Sprint(need - 1), fmt.Sprint(need), fmt.Sprintf("%dMi", needMi), fmt.Sprintf("%dMi", needMi-1),
			fmt.Sprintf("%dKi", need>>10-1), fmt.Sprintf("%dKi", need>>10), fmt.Sprintf("%dk", need/1000), fmt.Sprintf("%dk", need/1000+1),
			fmt.Sprintf("%de3", need/1000+1), fmt.Sprintf("%dm", need*1000-1), fmt.Sprintf("%dm", need*1000),
			"64Mi", "102Mi", "1Gi", "1.5Gi", "4Ti", "0", "1e9", "107M", "0.1Gi", "1E10", "900000000000000"}
		for _, limit := range limits {
			spec := map[string]any{"size": int64(1), "resources": map[string]any{"limits": map[string]any{"memory": limit, "cpu": "1"}}}
			if mb != 0 {
				spec["memoryMB"] = mb
				spec["maxItemSizeKB"] = min(mb*512, 1024)
			}
			cases = append(cases, admissionCase{source: fmt.Sprintf("memory limit %v for memoryMB %d", limit, mb), spec: spec})
		}
	}
	for _, resources := range []map[string]any{
		{}, {"limits": map[string]any{}}, {"limits": map[string]any{"cpu": "100m"}}, {"requests": map[string]any{"memory": "1Mi"}},
	} {
		cases = append(cases, admissionCase{source: "no memory limit", spec: map[string]any{"size": int64(1), "resources": resources}})
	}
	// The limits of TestCheckMemoryLimit.
	for _, call := range callsIn(t, "memcached_test.go", "withLimit") {
		mb, err := strconv.ParseInt(call[0], 10, 64)
		if err != nil {
			t.Fatalf("withLimit(%s): %v", call[0], err)
		}
		cases = append(cases, admissionCase{source: "memcached_test.go", spec: map[string]any{"size": int64(1), "memoryMB": mb,
			"resources": map[string]any{"limits": map[string]any{"memory": call[1]}}}})
	}
	return cases
}

// callsIn returns the literal arguments of the calls to function in the Go
// file name, strings unquoted.
func callsIn(t *testing.T, name, function string) [][]string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var calls [][]string
	ast.Inspect(file, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if id, ok := call.Fun.(*ast.Ident); !ok || id.Name != function {
			return true
		}
		var args []string
		for _, a := range call.Args {
			lit, ok := a.(*ast.BasicLit)
			if !ok {
				return true
			}
			v := lit.Value
			if lit.Kind == token.STRING {
				v, _ = strconv.Unquote(v)
			}
			args = append(args, v)
		}
		calls = append(calls, args)
		return true
	})
	if len(calls) == 0 {
		t.Fatalf("%s calls no %s", name, function)
	}
	return calls
}
