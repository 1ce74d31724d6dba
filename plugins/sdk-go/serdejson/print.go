package serdejson

import (
	"math"
	"strconv"
	"strings"
)

// Stringify prints v as serde_json's `Value::to_string()` does.
func Stringify(v Value) string {
	var out strings.Builder
	write(&out, v)
	return out.String()
}

func write(out *strings.Builder, v Value) {
	switch x := v.(type) {
	case nil:
		out.WriteString("null")
	case bool:
		if x {
			out.WriteString("true")
		} else {
			out.WriteString("false")
		}
	case PosInt:
		out.WriteString(strconv.FormatUint(uint64(x), 10))
	case NegInt:
		out.WriteString(strconv.FormatInt(int64(x), 10))
	case Float:
		out.WriteString(FormatFloat(float64(x)))
	case string:
		Quote(out, x)
	case Array:
		out.WriteByte('[')
		for i, item := range x {
			if i > 0 {
				out.WriteByte(',')
			}
			write(out, item)
		}
		out.WriteByte(']')
	case Object:
		out.WriteByte('{')
		for i, k := range SortedKeys(x) {
			if i > 0 {
				out.WriteByte(',')
			}
			Quote(out, k)
			out.WriteByte(':')
			write(out, x[k])
		}
		out.WriteByte('}')
	default:
		// Not a JSON value: print null rather than fail (never reached by
		// values this package or its callers build).
		out.WriteString("null")
	}
}

const hexDigits = "0123456789abcdef"

// Quote writes s as a JSON string the way serde_json does: `"` and `\`
// escaped, control characters as \b \t \n \f \r or \u00XX, everything else
// (DEL and non-ASCII included) as is.
func Quote(out *strings.Builder, s string) {
	out.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		out.WriteString(s[start:i])
		switch c {
		case '"':
			out.WriteString(`\"`)
		case '\\':
			out.WriteString(`\\`)
		case '\b':
			out.WriteString(`\b`)
		case '\t':
			out.WriteString(`\t`)
		case '\n':
			out.WriteString(`\n`)
		case '\f':
			out.WriteString(`\f`)
		case '\r':
			out.WriteString(`\r`)
		default:
			out.WriteString(`\u00`)
			out.WriteByte(hexDigits[c>>4])
			out.WriteByte(hexDigits[c&0xf])
		}
		start = i + 1
	}
	out.WriteString(s[start:])
	out.WriteByte('"')
}

// FormatFloat prints a float as serde_json 1.0.154 does: the shortest digits
// that round-trip, as a plain decimal with at least one fractional digit
// when the decimal exponent is within -5..=15 ("1.0", "0.00001", "1e15" as
// "1000000000000000.0"), else in scientific form with a signed exponent
// ("1e+16", "1.5e-7"). Non-finite values print as null.
func FormatFloat(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "null"
	}
	if x == 0 {
		if math.Signbit(x) {
			return "-0.0"
		}
		return "0.0"
	}
	sign := ""
	if x < 0 {
		sign = "-"
	}
	// "d.dddde±XX": the shortest round-trip digits and the exponent.
	sci := strconv.FormatFloat(math.Abs(x), 'e', -1, 64)
	mantissa, expText, _ := strings.Cut(sci, "e")
	digits := strings.Replace(mantissa, ".", "", 1)
	e, _ := strconv.Atoi(expText)
	n := len(digits)
	var body string
	switch {
	case e >= -5 && e <= 15 && n-1 <= e:
		body = digits + strings.Repeat("0", e-(n-1)) + ".0"
	case e >= 0 && e <= 15:
		body = digits[:e+1] + "." + digits[e+1:]
	case e >= -5 && e < 0:
		body = "0." + strings.Repeat("0", -e-1) + digits
	default:
		body = digits[:1]
		if n > 1 {
			body += "." + digits[1:]
		}
		if e >= 0 {
			body += "e+" + strconv.Itoa(e)
		} else {
			body += "e-" + strconv.Itoa(-e)
		}
	}
	return sign + body
}
