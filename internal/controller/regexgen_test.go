package controller

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode"
)

// regexGenerator makes strings that a regular expression matches: each
// repetition is drawn up to maxRepeat times, and each character class
// anywhere in its ranges, with a bias to ASCII.
type regexGenerator struct {
	rng       *rand.Rand
	maxRepeat int
}

// generate returns a string pattern matches.
func (g regexGenerator) generate(pattern string) (string, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return "", fmt.Errorf("failed to parse %q: %w", pattern, err)
	}
	var b strings.Builder
	if err := g.write(&b, re.Simplify()); err != nil {
		return "", fmt.Errorf("%q: %w", pattern, err)
	}
	return b.String(), nil
}

func (g regexGenerator) write(b *strings.Builder, re *syntax.Regexp) error {
	switch re.Op {
	case syntax.OpNoMatch:
		return fmt.Errorf("matches nothing")
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return nil
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if re.Flags&syntax.FoldCase != 0 && g.rng.IntN(2) == 0 {
				r = unicode.SimpleFold(r)
			}
			b.WriteRune(r)
		}
		return nil
	case syntax.OpCharClass:
		b.WriteRune(g.inClass(re.Rune))
		return nil
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		b.WriteRune(g.inClass([]rune{' ', '~', 0xa0, 0x10ffff}))
		return nil
	case syntax.OpCapture:
		return g.write(b, re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		lo, hi := re.Min, re.Max
		switch re.Op {
		case syntax.OpStar:
			lo, hi = 0, -1
		case syntax.OpPlus:
			lo, hi = 1, -1
		case syntax.OpQuest:
			lo, hi = 0, 1
		}
		if hi < 0 {
			hi = lo + g.maxRepeat
		}
		for range lo + g.rng.IntN(hi-lo+1) {
			if err := g.write(b, re.Sub[0]); err != nil {
				return err
			}
		}
		return nil
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if err := g.write(b, sub); err != nil {
				return err
			}
		}
		return nil
	case syntax.OpAlternate:
		return g.write(b, re.Sub[g.rng.IntN(len(re.Sub))])
	}
	return fmt.Errorf("cannot generate %s", re.Op)
}

// inClass returns a rune of the ranges of a character class, given as pairs
// of bounds: mostly one of the ASCII ones.
func (g regexGenerator) inClass(ranges []rune) rune {
	var ascii []rune
	for i := 0; i < len(ranges); i += 2 {
		if lo := ranges[i]; lo < unicode.MaxASCII {
			ascii = append(ascii, lo, min(ranges[i+1], unicode.MaxASCII))
		}
	}
	if len(ascii) > 0 && g.rng.IntN(8) > 0 {
		ranges = ascii
	}
	i := 2 * g.rng.IntN(len(ranges)/2)
	return ranges[i] + rune(g.rng.IntN(int(ranges[i+1]-ranges[i])+1))
}

func TestRegexGeneratorMakesMatchingStrings(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, pattern := range []string{
		`^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`,
		`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`,
		`^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`,
		`^[!-~]+$`, `(?i)^abc.x{2,4}[^a-z]$`, `^(100|[1-9]?[0-9])%$`,
	} {
		re := regexp.MustCompile(pattern)
		seen := map[string]bool{}
		for i := range 200 {
			s, err := regexGenerator{rng: rng, maxRepeat: 1 + i%12}.generate(pattern)
			if err != nil {
				t.Fatal(err)
			}
			if !re.MatchString(s) {
				t.Errorf("%q does not match %s", s, pattern)
			}
			seen[s] = true
		}
		if len(seen) < 5 {
			t.Errorf("%s gave only %d different strings", pattern, len(seen))
		}
	}
}
