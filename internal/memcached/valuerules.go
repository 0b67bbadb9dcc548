package memcached

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	cachev1alpha1 "example.com/memcached-operator/api/v1alpha1"
)

// The values of options are checked by small descriptors rather than by
// functions, so that each can say what it accepts twice: as a Go check, which
// the operator runs, and as CEL, which the CRD's validation rules run at
// admission (see cel.go). Both must accept exactly the same values.

// valueRule is what the value of an option, or of a -o sub-option, must be.
type valueRule interface {
	// check returns why value is refused, or nil.
	check(value string) error
	// celChecks returns CEL checks over the CEL string expression v: v is
	// accepted when every check's ok holds.
	celChecks(v string) []celCheck
}

// specRule is what the value of an option must be given the rest of the
// spec.
type specRule interface {
	// check returns why value is refused with spec, or nil.
	check(spec *cachev1alpha1.MemcachedSpec, value string) error
	// celCheck returns a CEL check over the CEL expression spec, a
	// MemcachedSpec, and the CEL string expression v.
	celCheck(spec, v string) celCheck
}

// celCheck is a CEL check of a value.
type celCheck struct {
	// ok is a CEL expression of type bool, true when the value is accepted.
	ok string
	// why is a CEL expression of type string that says why the value is
	// refused; it is evaluated only when ok is false.
	why string
}

// celInteger matches what strconv.ParseInt(s, 10, 64) reads without
// overflowing: every whole number strconv.ParseInt reads that does not match
// it is above each range of intRange. CEL's int() parses like ParseInt.
const celInteger = `^[-+]?0*[0-9]{1,18}$`

// intRange is a whole number from lowest to highest.
type intRange struct {
	lowest, highest int64
}

func (r intRange) message() string {
	return fmt.Sprintf("must be a whole number from %d to %d", r.lowest, r.highest)
}

func (r intRange) check(value string) error {
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil || n < r.lowest || n > r.highest {
		return fmt.Errorf("%s", r.message())
	}
	return nil
}

func (r intRange) celChecks(v string) []celCheck {
	return []celCheck{{
		ok:  fmt.Sprintf("%s.matches(%s) && int(%s) >= %d && int(%s) <= %d", v, celQuote(celInteger), v, r.lowest, v, r.highest),
		why: celQuote(r.message()),
	}}
}

// decimal is a decimal number as the decimal ranges accept it.
var decimal = regexp.MustCompile(`^[0-9]{1,3}([.][0-9]{1,6})?$`)

// decimalRange is a decimal number, as decimal matches it, above above and,
// unless atMost is 0, at most atMost.
type decimalRange struct {
	above, atMost float64
	// message is the error of a value out of range.
	message string
}

func (r decimalRange) check(value string) error {
	f, err := strconv.ParseFloat(value, 64)
	if !decimal.MatchString(value) || err != nil || f <= r.above || (r.atMost != 0 && f > r.atMost) {
		return fmt.Errorf("%s", r.message)
	}
	return nil
}

func (r decimalRange) celChecks(v string) []celCheck {
	ok := fmt.Sprintf("%s.matches(%s) && double(%s) > %s", v, celQuote(decimal.String()), v, celDouble(r.above))
	if r.atMost != 0 {
		ok += fmt.Sprintf(" && double(%s) <= %s", v, celDouble(r.atMost))
	}
	return []celCheck{{ok: ok, why: celQuote(r.message)}}
}

// oneOf is one of choices.
type oneOf struct {
	choices []string
	// message is the error of another value; "must be one of ..." when empty.
	message string
}

func (r oneOf) messageText() string {
	if r.message != "" {
		return r.message
	}
	return "must be one of " + strings.Join(r.choices, ", ")
}

func (r oneOf) check(value string) error {
	if !slices.Contains(r.choices, value) {
		return fmt.Errorf("%s", r.messageText())
	}
	return nil
}

func (r oneOf) celChecks(v string) []celCheck {
	return []celCheck{{ok: fmt.Sprintf("%s in %s", v, celList(r.choices)), why: celQuote(r.messageText())}}
}

// singleChar is a single character.
type singleChar struct {
	message string
}

func (r singleChar) check(value string) error {
	if len(value) != 1 {
		return fmt.Errorf("%s", r.message)
	}
	return nil
}

func (r singleChar) celChecks(v string) []celCheck {
	return []celCheck{{ok: fmt.Sprintf("size(%s) == 1", v), why: celQuote(r.message)}}
}

// slabSizes is a slab_sizes list: chunk sizes in bytes, from smallest to
// largest, separated by "-", each more than step bytes above the one before.
type slabSizes struct {
	smallest, largest, step int64
	most                    int
}

func (r slabSizes) message() string {
	return fmt.Sprintf("must be chunk sizes in bytes, from %d to %d, separated by \"-\", each more than %d above the one before",
		r.smallest, r.largest, r.step)
}

func (r slabSizes) check(value string) error {
	sizes := strings.Split(value, "-")
	if len(sizes) > r.most {
		return fmt.Errorf("%s, at most %d of them", r.message(), r.most)
	}
	previous := int64(0)
	for _, s := range sizes {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < r.smallest || n > r.largest || n <= previous+r.step {
			return fmt.Errorf("%s", r.message())
		}
		previous = n
	}
	return nil
}

func (r slabSizes) celChecks(v string) []celCheck {
	sizes := v + ".split('-')"
	// Each size is more than step above the one before when size j minus
	// (step + 1) * j never decreases: a sorted list, which needs no second
	// look at the list inside the loop.
	return []celCheck{
		{ok: fmt.Sprintf("size(%s) <= %d", sizes, r.most), why: celQuote(fmt.Sprintf("%s, at most %d of them", r.message(), r.most))},
		{
			ok: fmt.Sprintf("%s.all(x, x.matches(%s) && int(x) >= %d && int(x) <= %d) && %s.transformList(j, x, int(x) - %d * j).isSorted()",
				sizes, celQuote(celInteger), r.smallest, r.largest, sizes, r.step+1),
			why: celQuote(r.message()),
		},
	}
}

// asciiWithAuth is the protocol with spec.auth: memcached authenticates
// ascii clients only, and exits when another protocol is asked for.
type asciiWithAuth struct{}

const asciiWithAuthMessage = "with spec.auth, memcached speaks the ascii protocol only"

func (asciiWithAuth) check(spec *cachev1alpha1.MemcachedSpec, value string) error {
	if spec.Auth != nil && value != "ascii" {
		return fmt.Errorf("%s", asciiWithAuthMessage)
	}
	return nil
}

func (asciiWithAuth) celCheck(spec, v string) celCheck {
	return celCheck{ok: fmt.Sprintf("!has(%s.auth) || %s == 'ascii'", spec, v), why: celQuote(asciiWithAuthMessage)}
}

// celQuote returns s as a CEL string literal.
func celQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// celList returns ss as a CEL list of string literals.
func celList(ss []string) string {
	quoted := make([]string, len(ss))
	for i, s := range ss {
		quoted[i] = celQuote(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// celDouble returns f as a CEL double literal.
func celDouble(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}
