package memcached

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// This file turns the option tables of extraargs.go into the CEL validation
// rules of the Memcached CRD, so that the API server refuses at admission
// what CheckExtraArgs and CheckMemoryLimit refuse, from the same tables.
// internal/memcached/celgen writes them into api/v1alpha1.
//
// CheckExtraArgs walks the arguments in order: an argument is an option, or
// the value of the short option before it. For the arguments it accepts,
// values never start with "-" and options always do, so an argument is a
// value exactly when the argument before it is a short option that takes
// one; an argument list in which an argument that starts with "-" is a value
// is refused anyway. The rules therefore look at each argument and the one
// before it only, which CEL's two-variable comprehensions (Kubernetes 1.33)
// can do within the API server's cost budget.

// The most arguments spec.extraArgs may hold, and the longest argument:
// they bound what the rules cost the API server.
const (
	MaxExtraArgs      = 32
	MaxExtraArgLength = 256
)

// ValidationRule is a CEL validation rule of the CRD, as the
// +kubebuilder:validation:XValidation marker takes it.
type ValidationRule struct {
	// Rule is the CEL expression that must hold.
	Rule string
	// Message is what the API server answers when Rule fails; used when
	// MessageExpression is empty.
	Message string
	// MessageExpression is a CEL expression that computes the message.
	MessageExpression string
}

// Marker returns rule as a +kubebuilder:validation:XValidation marker.
func (rule ValidationRule) Marker() string {
	m := "+kubebuilder:validation:XValidation:rule=" + markerString(rule.Rule)
	if rule.MessageExpression != "" {
		return m + ",messageExpression=" + markerString(rule.MessageExpression)
	}
	return m + ",message=" + markerString(rule.Message)
}

// markerString quotes s for a marker, as a raw string where it can be.
func markerString(s string) string {
	if !strings.Contains(s, "`") {
		return "`" + s + "`"
	}
	return fmt.Sprintf("%q", s)
}

// printableRule is the rule that each argument is a printable ASCII word,
// which CheckExtraArgs also checks.
var printableRule = ValidationRule{
	Rule: "self.all(a, a.matches('^[!-~]+$'))",
	Message: "each of extraArgs must be a non-empty word of printable ASCII characters without spaces: " +
		"give an option and its value as separate elements",
}

// argList is how the rules refer to spec.extraArgs, the list whose elements
// the comprehensions name i (the index) and a (the argument).
type argList string

// prev is the argument before a.
func (l argList) prev() string { return string(l) + "[i - 1]" }

// isValueOf is true when a is the value of opt: after its short form, or
// after "=" in its long form.
func (l argList) isValueOf(opt option) string {
	var alts []string
	if opt.short != 0 {
		alts = append(alts, fmt.Sprintf("i > 0 && %s == %s", l.prev(), celQuote(opt.name())))
	}
	if opt.long != "" {
		alts = append(alts, fmt.Sprintf("a.startsWith(%s)", celQuote("--"+opt.long+"=")))
	}
	return "(" + strings.Join(alts, " || ") + ")"
}

// valueOf is the value of opt when isValueOf holds.
func (l argList) valueOf(opt option) string {
	attached := fmt.Sprintf("a.substring(%d)", len("--"+opt.long+"="))
	switch {
	case opt.long == "":
		return "a"
	case opt.short == 0:
		return attached
	}
	return fmt.Sprintf("(i > 0 && %s == %s ? a : %s)", l.prev(), celQuote(opt.name()), attached)
}

// firstValueOf is the first value of opt. An option may be given once only,
// so its rules need to check its first value only, which keeps their cost
// down: the API server estimates what a rule costs for the longest list the
// schema allows, whatever the rule does with it.
func (l argList) firstValueOf(opt option) string {
	return fmt.Sprintf("%s.transformList(i, a, %s, %s)[0]", l, l.isValueOf(opt), l.valueOf(opt))
}

// ExtraArgsValidationRules returns the rules of the type of spec.extraArgs:
// those that need no other field of the spec.
func ExtraArgsValidationRules() []ValidationRule {
	l := argList("self")
	var shortValued, shortKnown, longKnown, longFlags, longValued []string
	for _, o := range allowedOptions {
		if o.short != 0 {
			shortKnown = append(shortKnown, o.name())
			if o.value != nil {
				shortValued = append(shortValued, o.name())
			}
		}
		if o.long == "" {
			continue
		}
		longKnown = append(longKnown, "--"+o.long)
		if o.value == nil {
			longFlags = append(longFlags, "--"+o.long)
		} else {
			longValued = append(longValued, "--"+o.long)
		}
	}
	refused := refusedArguments()
	refusedKeys := slices.Sorted(maps.Keys(refused))
	for _, k := range refusedKeys {
		if strings.HasPrefix(k, "--") {
			longKnown = append(longKnown, k)
		} else {
			shortKnown = append(shortKnown, k)
		}
	}
	sv := celList(shortValued)
	// key is an argument without the value of a long option.
	const key = "(a.startsWith('--') ? a.split('=')[0] : a)"
	rules := []ValidationRule{
		printableRule,
		listRule("!self.exists(a, "+key+" in "+celList(refusedKeys)+")",
			"self.filter(a, "+key+" in "+celList(refusedKeys)+").map(a, "+celMap(refused)+"["+key+"])[0]"),
		listRule("!self.exists(a, a.startsWith('--') && !(a.split('=')[0] in "+celList(longKnown)+"))",
			"self.filter(a, a.startsWith('--') && !(a.split('=')[0] in "+celList(longKnown)+"))[0] + "+
				celQuote(": not an option that may be set; long options must be written in full, and only tuning options are accepted "+
					"(see the Memcached API documentation)")),
		listRule("!self.exists(a, a.startsWith('-') && !a.startsWith('--') && size(a) > 2)",
			"self.filter(a, a.startsWith('-') && !a.startsWith('--') && size(a) > 2)[0] + "+
				celQuote(": give each option in an argument of its own and its value in the next one, as in -R, 20")),
		listRule("!self.exists(a, size(a) == 2 && a.startsWith('-') && a != '--' && !(a in "+celList(shortKnown)+"))",
			"self.filter(a, size(a) == 2 && a.startsWith('-') && a != '--' && !(a in "+celList(shortKnown)+"))[0] + "+
				celQuote(": not an option that may be set: only tuning options are accepted (see the Memcached API documentation)")),
		// An argument after a refused option that memcached reads a value
		// for is left to the rule that refuses the option.
		listRule(fmt.Sprintf("self.all(i, a, i > 0 && (%s in %s || %s in %s) || a.startsWith('-') && a != '-')",
			l.prev(), sv, l.prev(), celList(refusedKeys)),
			fmt.Sprintf("self.transformList(i, a, !(i > 0 && (%s in %s || %s in %s) || a.startsWith('-') && a != '-'), a)[0] + %s",
				l.prev(), sv, l.prev(), celList(refusedKeys), celQuote(": not an option: give options and their values, as in -R, 20"))),
		listRule("!self.exists(a, a.contains('=') && a.split('=')[0] in "+celList(longFlags)+")",
			"self.filter(a, a.contains('=') && a.split('=')[0] in "+celList(longFlags)+")[0] + "+
				celQuote(": the option takes no value")),
		listRule("!self.exists(a, a in "+celList(longValued)+")",
			"self.filter(a, a in "+celList(longValued)+").map(a, a + ': give the value after =, as in ' + a + '=VALUE')[0]"),
		listRule("size(self) == 0 || !(self[size(self) - 1] in "+sv+")",
			"self[size(self) - 1] + ': the option needs a value, in the next element'"),
		listRule(fmt.Sprintf("!self.exists(i, a, i > 0 && %s in %s && a.startsWith('-'))", l.prev(), sv),
			fmt.Sprintf("self.transformList(i, a, i > 0 && %s in %s && a.startsWith('-'), 'the value of ' + %s + ' may not start with -: ' + a)[0]",
				l.prev(), sv, l.prev())),
		onceRule(),
	}
	for _, o := range allowedOptions {
		if o.value == nil {
			continue
		}
		is, v := l.isValueOf(o), l.firstValueOf(o)
		for _, c := range o.value.celChecks(v) {
			rules = append(rules, listRule(
				fmt.Sprintf("!self.exists(i, a, %s) || (%s)", is, c.ok),
				fmt.Sprintf("%s + ' ' + %s + ': ' + %s", celQuote(o.name()), v, c.why)))
		}
	}
	return rules
}

// listRule returns the rule ok with the message expression message.
func listRule(ok, message string) ValidationRule {
	return ValidationRule{Rule: ok, MessageExpression: message}
}

// onceRule returns the rule that no allowed option is given twice.
func onceRule() ValidationRule {
	terms := make([]string, 0, len(allowedOptions))
	names := make([]string, 0, len(allowedOptions))
	for _, o := range allowedOptions {
		var alts []string
		if o.short != 0 {
			alts = append(alts, "a == "+celQuote(o.name()))
		}
		if o.long != "" {
			alts = append(alts, "a == "+celQuote("--"+o.long), "a.startsWith("+celQuote("--"+o.long+"=")+")")
		}
		count := fmt.Sprintf("size(self.filter(a, %s))", strings.Join(alts, " || "))
		terms = append(terms, count+" <= 1")
		names = append(names, fmt.Sprintf(`%s > 1 ? %s : ""`, count, celQuote(o.name())))
	}
	return listRule(strings.Join(terms, " && "),
		"["+strings.Join(names, ", ")+`].filter(n, n != "")[0] + `+
			celQuote(" is given twice: each option may be given once, in its short or its long form"))
}

// refusedArguments returns, for each option of memcached that spec.extraArgs
// may not set, in its short and long forms, why.
func refusedArguments() map[string]string {
	out := map[string]string{}
	for short, reason := range refusedOptions {
		out["-"+short] = "-" + short + " may not be set: " + reason
	}
	for long, short := range longNames {
		out["--"+long] = "--" + long + " may not be set: " + refusedOptions[short]
	}
	return out
}

// SpecValidationRules returns the rules of MemcachedSpec that come from the
// option tables and from MemoryLimit: those that need several fields.
func SpecValidationRules() []ValidationRule {
	l := argList("self.extraArgs")
	var rules []ValidationRule
	for _, o := range allowedOptions {
		if o.spec == nil {
			continue
		}
		is, v := l.isValueOf(o), l.firstValueOf(o)
		c := o.spec.celCheck("self", v)
		rules = append(rules, ValidationRule{
			Rule:              fmt.Sprintf("!has(self.extraArgs) || !self.extraArgs.exists(i, a, %s) || (%s)", is, c.ok),
			MessageExpression: fmt.Sprintf("'extraArgs ' + %s + ' ' + %s + ': ' + %s", celQuote(o.name()), v, c.why),
		})
	}
	return append(rules, memoryLimitRule())
}

// memoryLimitRule returns the rule of CheckMemoryLimit.
func memoryLimitRule() ValidationRule {
	const limit = "self.resources.limits['memory']"
	// q is the check of spec.resources.limits: what it refuses is left
	// to it.
	q := fmt.Sprintf("size(%[1]s) <= 32 && !%[1]s.startsWith('-') && (%[1]s.lowerAscii() + 'eeee').indexOf('e') >= size(%[1]s) - 4 && isQuantity(%[1]s)", limit)
	mb := fmt.Sprintf("(has(self.memoryMB) ? self.memoryMB : %d)", cachev1alpha1.DefaultMemoryMB)
	ext := fmt.Sprintf("(has(self.extstore) && has(self.extstore.enabled) && self.extstore.enabled ? %d * "+
		"(has(self.extstore.writeBufferMB) ? self.extstore.writeBufferMB : %d) : 0)",
		ExtstoreBuffersOutsideMemory, cachev1alpha1.DefaultExtstoreWriteBufferMB)
	need := fmt.Sprintf("(%s + %s / %d + %d + %s) * 1048576", mb, mb, memoryOverheadDivisor, memoryOverheadMi, ext)
	return ValidationRule{
		Rule: fmt.Sprintf("!has(self.resources) || !has(self.resources.limits) || !('memory' in self.resources.limits) || "+
			"(type(%s) == int ? %s >= %s : !(%s) || quantity(%s).compareTo(quantity('0').add(%s)) >= 0)",
			limit, limit, need, q, limit, need),
		// The API server cannot bound the length of a number turned into a
		// string, so the message does not compute memoryMB + 10% + 32Mi.
		MessageExpression: fmt.Sprintf("'resources.limits.memory ' + string(%s) + ' is too small for memoryMB: memcached needs memoryMB + %d%% + %dMi, "+
			"and %d x extstore.writeBufferMB with extstore; raise the limit, or leave it out to have it derived'",
			limit, 100/memoryOverheadDivisor, memoryOverheadMi, ExtstoreBuffersOutsideMemory),
	}
}

// celMap returns m as a CEL map literal, its keys sorted.
func celMap(m map[string]string) string {
	entries := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		entries = append(entries, celQuote(k)+": "+celQuote(m[k]))
	}
	return "{" + strings.Join(entries, ", ") + "}"
}

// celChecks of subOptionList: the elements of a -o value v, split at ",",
// are each a known -o option, once, with a value as it takes, and together
// as memcached accepts them.
func (subOptionList) celChecks(v string) []celCheck {
	elems := v + ".split(',')"
	const key = "e.split('=')[0]"
	names := slices.Sorted(maps.Keys(subOptions))
	known := celList(names)

	reason := fmt.Sprintf(`(%s == "" ? 'an empty option' : %s) + ' is not an option that may be set (see the Memcached API documentation)'`, key, key)
	prefixes := slices.Sorted(maps.Keys(refusedSubOptions))
	for _, p := range slices.Backward(prefixes) {
		reason = fmt.Sprintf("e.startsWith(%s) ? %s + %s : %s", celQuote(p), key, celQuote(" may not be set: "+refusedSubOptions[p]), reason)
	}

	ok, why := "true", `""`
	for _, n := range slices.Backward(names) {
		o := subOptions[n]
		is := fmt.Sprintf("(e == %s || e.startsWith(%s))", celQuote(n), celQuote(n+"="))
		value := fmt.Sprintf("e.substring(%d)", len(n)+1)
		var nOK, nWhy string
		switch {
		case o.value == nil:
			nOK, nWhy = "e == "+celQuote(n), celQuote(n+" takes no value")
		case o.flag:
			vOK, vWhy := joinChecks(o.value.celChecks(value))
			nOK, nWhy = fmt.Sprintf("e == %s || %s", celQuote(n), vOK), celQuote(n+": ")+" + "+vWhy
		default:
			vOK, vWhy := joinChecks(o.value.celChecks(value))
			nOK = fmt.Sprintf("e.startsWith(%s) && %s", celQuote(n+"="), vOK)
			nWhy = fmt.Sprintf("e == %s ? %s : %s + %s", celQuote(n), celQuote(n+" needs a value, as in "+n+"=VALUE"), celQuote(n+": "), vWhy)
		}
		ok = fmt.Sprintf("%s ? (%s) : %s", is, nOK, ok)
		why = fmt.Sprintf("%s ? (%s) : %s", is, nWhy, why)
	}
	count := "size(" + elems + ".filter(e, e == n || e.startsWith(n + '=')))"

	checks := make([]celCheck, 0, 3+len(subOptionsTogether))
	checks = append(checks,
		celCheck{ok: fmt.Sprintf("%s.all(e, %s in %s)", elems, key, known),
			why: fmt.Sprintf("%s.filter(e, !(%s in %s)).map(e, %s)[0]", elems, key, known, reason)},
		celCheck{ok: fmt.Sprintf("%s.all(e, %s)", elems, ok),
			why: fmt.Sprintf("%s.filter(e, !(%s)).map(e, %s)[0]", elems, ok, why)},
		celCheck{ok: fmt.Sprintf("%s.all(n, %s <= 1)", known, count),
			why: fmt.Sprintf("%s.filter(n, %s > 1).map(n, n + ' is given twice')[0]", known, count)},
	)
	for _, rule := range subOptionsTogether {
		checks = append(checks, rule.celCheck(elems))
	}
	return checks
}

// joinChecks returns the checks as one: ok when every check is, and the
// message of the first that is not.
func joinChecks(checks []celCheck) (ok, why string) {
	oks := make([]string, len(checks))
	why = checks[len(checks)-1].why
	for i := len(checks) - 1; i >= 0; i-- {
		oks[i] = "(" + checks[i].ok + ")"
		if i < len(checks)-1 {
			why = fmt.Sprintf("!(%s) ? %s : %s", checks[i].ok, checks[i].why, why)
		}
	}
	return strings.Join(oks, " && "), "(" + why + ")"
}

func (r sumAtMost) celCheck(elems string) celCheck {
	sel := func(key string) string {
		return fmt.Sprintf("%s.filter(e, e.startsWith(%s) && e.substring(%d).matches(%s))", elems, celQuote(key+"="), len(key)+1, celQuote(celInteger))
	}
	first, second := sel(r.keys[0]), sel(r.keys[1])
	return celCheck{
		ok: fmt.Sprintf("size(%s) == 0 || size(%s) == 0 || int(%s[0].substring(%d)) + int(%s[0].substring(%d)) <= %d",
			first, second, first, len(r.keys[0])+1, second, len(r.keys[1])+1, r.most),
		why: celQuote(r.message),
	}
}

func (r excludes) celCheck(elems string) celCheck {
	has := func(key string) string {
		return fmt.Sprintf("e == %s || e.startsWith(%s)", celQuote(key), celQuote(key+"="))
	}
	others := make([]string, len(r.others))
	for i, o := range r.others {
		others[i] = has(o)
	}
	return celCheck{
		ok:  fmt.Sprintf("!%s.exists(e, %s) || !%s.exists(e, %s)", elems, has(r.key), elems, strings.Join(others, " || ")),
		why: celQuote(r.message),
	}
}

func (subOptionsWithSpec) celCheck(spec, v string) celCheck {
	return celCheck{
		ok: fmt.Sprintf("!has(%s.maxItemSizeKB) || %s.maxItemSizeKB %% %d == 0 || !%s.split(',').exists(e, e.split('=')[0] == %s)",
			spec, spec, unchunkedItemSizeKB, v, celQuote(unchunkedKey)),
		why: celQuote(fmt.Sprintf("-o %s needs spec.maxItemSizeKB to be a multiple of %d", unchunkedKey, unchunkedItemSizeKB)),
	}
}
