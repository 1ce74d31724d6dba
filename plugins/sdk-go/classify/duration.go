package classify

import (
	"math/big"
	"strings"
	"unicode"

	"batchllm/sdk/text"
)

// ParseRetryAfterMsHeader parses a retry-after-ms header value
// (milliseconds, possibly fractional, rounded up).
func ParseRetryAfterMsHeader(value string) (uint64, bool) {
	return nsToMs(decimalToNs(text.Trim(value), big.NewInt(1_000_000)))
}

// ParseRetryAfterHeader parses a retry-after header value given in seconds
// (possibly fractional, rounded up to whole milliseconds). An HTTP-date
// gives false: converting it needs a clock, and a strategy has none.
func ParseRetryAfterHeader(value string) (uint64, bool) {
	return nsToMs(decimalToNs(text.Trim(value), big.NewInt(1_000_000_000)))
}

// ParseTryAgainIn finds a "try again in 644ms" / "Please try again in
// 9.816s" / "retry in 1m30s" / "retry after 2 seconds" phrase (any case)
// in s and returns its duration in milliseconds, rounded up.
func ParseTryAgainIn(s string) (uint64, bool) {
	// ASCII lowercasing keeps byte offsets valid for s.
	lower := text.ASCIILower(s)
	for _, needle := range []string{"try again in ", "retry in ", "retry after "} {
		from := 0
		for {
			pos := strings.Index(lower[from:], needle)
			if pos < 0 {
				break
			}
			start := from + pos + len(needle)
			if ms, ok := ParseDurationMs(s[start:]); ok {
				return ms, true
			}
			from = start
		}
	}
	return 0, false
}

// ParseDurationMs parses a duration at the start of s, in milliseconds
// rounded up: Go-style compound durations (644ms, 9.816s, 1m30s, 1h2m3.5s,
// 500us) and simple spelled-out ones (2 seconds, 1.5 minutes). Text after
// the duration is ignored; false when s does not start with a number
// followed by a known unit.
func ParseDurationMs(s string) (uint64, bool) {
	rest := text.TrimStart(s)
	total := new(big.Int)
	parsedAny := false
	for {
		numLen := strings.IndexFunc(rest, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '.') })
		if numLen < 0 {
			numLen = len(rest)
		}
		if numLen == 0 {
			break
		}
		number := rest[:numLen]
		unitStart := strings.TrimLeft(rest[numLen:], " ")
		unitLen := strings.IndexFunc(unitStart, func(r rune) bool { return !isAlphabetic(r) })
		if unitLen < 0 {
			unitLen = len(unitStart)
		}
		factor := unitNs(unitStart[:unitLen])
		if factor == 0 {
			break
		}
		ns := decimalToNs(number, big.NewInt(factor))
		if ns == nil {
			break
		}
		total.Add(total, ns)
		if total.Cmp(u128Max) > 0 {
			total.Set(u128Max) // u128::saturating_add
		}
		parsedAny = true
		rest = unitStart[unitLen:]
		// Go-style components follow each other without a separator.
		if rest == "" || rest[0] < '0' || rest[0] > '9' {
			break
		}
	}
	if !parsedAny {
		return 0, false
	}
	return nsToMs(total)
}

// isAlphabetic is Rust's `char::is_alphabetic` (the Unicode Alphabetic
// property: letters, letter numbers and Other_Alphabetic).
func isAlphabetic(r rune) bool {
	return unicode.IsLetter(r) || unicode.In(r, unicode.Nl, unicode.Other_Alphabetic)
}

// unitNs is the length of a duration unit in nanoseconds, 0 when unknown.
func unitNs(unit string) int64 {
	switch text.ASCIILower(unit) {
	case "ns":
		return 1
	case "us", "µs", "μs":
		return 1_000
	case "ms", "msec", "msecs", "millisecond", "milliseconds":
		return 1_000_000
	case "s", "sec", "secs", "second", "seconds":
		return 1_000_000_000
	case "m", "min", "mins", "minute", "minutes":
		return 60_000_000_000
	case "h", "hr", "hrs", "hour", "hours":
		return 3_600_000_000_000
	}
	return 0
}

// u128Max bounds the arithmetic as the Rust SDK's u128 does.
var u128Max = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// decimalToNs is number (digits with at most one '.') times factor
// nanoseconds, rounded up to whole nanoseconds, computed exactly; nil when
// number is not such a decimal or the result exceeds u128.
func decimalToNs(number string, factor *big.Int) *big.Int {
	intPart, frac, _ := strings.Cut(number, ".")
	if intPart == "" && frac == "" {
		return nil
	}
	if !allDigits(intPart) || !allDigits(frac) {
		return nil
	}
	// Digits past nanosecond precision of the largest unit cannot matter.
	if len(frac) > 18 {
		frac = frac[:18]
	}
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	intValue := new(big.Int)
	if intPart != "" {
		intValue.SetString(intPart, 10)
	}
	fracValue := new(big.Int)
	if frac != "" {
		fracValue.SetString(frac, 10)
	}
	if intValue.Cmp(u128Max) > 0 {
		return nil
	}
	mantissa := new(big.Int).Mul(intValue, scale)
	mantissa.Add(mantissa, fracValue)
	if mantissa.Cmp(u128Max) > 0 {
		return nil
	}
	total := new(big.Int).Mul(mantissa, factor)
	if total.Cmp(u128Max) > 0 {
		return nil
	}
	return divCeil(total, scale)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func divCeil(a, b *big.Int) *big.Int {
	q, r := new(big.Int).QuoRem(a, b, new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	return q
}

// nsToMs is ns in milliseconds, rounded up and saturated at u64::MAX; false
// when ns is nil (not a number).
func nsToMs(ns *big.Int) (uint64, bool) {
	if ns == nil {
		return 0, false
	}
	ms := divCeil(ns, big.NewInt(1_000_000))
	if !ms.IsUint64() {
		return ^uint64(0), true
	}
	return ms.Uint64(), true
}
