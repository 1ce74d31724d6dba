package serdejson

import (
	"math"
	"strconv"
	"strings"
)

// SyntaxError is a document serde_json rejects, with serde_json's message
// ("expected value at line 1 column 1").
type SyntaxError struct{ message string }

func (e *SyntaxError) Error() string { return e.message }

// Parse reads text as serde_json's `from_str::<Value>` does.
func Parse(text string) (v Value, err error) {
	p := &parser{b: text, depth: 128}
	// The parser stops at the first error by panicking with a *SyntaxError,
	// which is turned back into the returned error here and never escapes;
	// any other panic is a bug and propagates.
	defer func() {
		if r := recover(); r != nil {
			se, ok := r.(*SyntaxError)
			if !ok {
				panic(r)
			}
			v, err = nil, se
		}
	}()
	v = p.value()
	if p.whitespace() != -1 {
		panic(p.peekError(errTrailing))
	}
	return v, nil
}

// The error codes, with serde_json's messages.
const (
	errEOFList          = "EOF while parsing a list"
	errEOFObject        = "EOF while parsing an object"
	errEOFString        = "EOF while parsing a string"
	errEOFValue         = "EOF while parsing a value"
	errColon            = "expected `:`"
	errListCommaOrEnd   = "expected `,` or `]`"
	errObjectCommaOrEnd = "expected `,` or `}`"
	errIdent            = "expected ident"
	errValue            = "expected value"
	errEscape           = "invalid escape"
	errNumber           = "invalid number"
	errRange            = "number out of range"
	errControl          = "control character (\\u0000-\\u001F) found while parsing a string"
	errKey              = "key must be a string"
	errLoneSurrogate    = "lone leading surrogate in hex escape"
	errTrailingComma    = "trailing comma"
	errTrailing         = "trailing characters"
	errHexEnd           = "unexpected end of hex escape"
	errRecursion        = "recursion limit exceeded"
)

// pow10 holds 1e0..1e308, each the correctly rounded double (as the Rust
// literals in serde_json's table are).
var pow10 = func() [309]float64 {
	var t [309]float64
	for k := range t {
		t[k], _ = strconv.ParseFloat("1e"+strconv.Itoa(k), 64)
	}
	return t
}()

// parser is a byte-level port of serde_json's `Deserializer<StrRead>` for
// `Value` (without the `float_roundtrip` or `arbitrary_precision`
// features), including where it reports each error.
type parser struct {
	b     string
	i     int
	depth int
}

// fail builds the error for code at byte index (line 1-based, column the
// byte offset in its line, as serde_json counts).
func (p *parser) fail(code string, index int) *SyntaxError {
	line := 1 + strings.Count(p.b[:index], "\n")
	lineStart := strings.LastIndexByte(p.b[:index], '\n') + 1
	return &SyntaxError{code + " at line " + strconv.Itoa(line) + " column " + strconv.Itoa(index-lineStart)}
}

// error is serde_json's `error`: at the next unread byte.
func (p *parser) error(code string) *SyntaxError { return p.fail(code, p.i) }

// peekError is serde_json's `peek_error`: just past the byte looked at.
func (p *parser) peekError(code string) *SyntaxError {
	return p.fail(code, min(len(p.b), p.i+1))
}

func (p *parser) peek() int {
	if p.i < len(p.b) {
		return int(p.b[p.i])
	}
	return -1
}

func (p *parser) whitespace() int {
	for {
		c := p.peek()
		if c == ' ' || c == '\n' || c == '\t' || c == '\r' {
			p.i++
		} else {
			return c
		}
	}
}

func isDigit(c int) bool { return c >= '0' && c <= '9' }

func (p *parser) value() Value {
	c := p.whitespace()
	switch {
	case c == -1:
		panic(p.peekError(errEOFValue))
	case c == 'n':
		p.i++
		p.ident("ull")
		return nil
	case c == 't':
		p.i++
		p.ident("rue")
		return true
	case c == 'f':
		p.i++
		p.ident("alse")
		return false
	case c == '-':
		p.i++
		return p.number(false)
	case isDigit(c):
		return p.number(true)
	case c == '"':
		p.i++
		return p.string()
	case c == '[' || c == '{':
		p.depth--
		if p.depth == 0 {
			panic(p.peekError(errRecursion))
		}
		p.i++
		var v Value
		if c == '[' {
			v = p.list()
		} else {
			v = p.object()
		}
		p.depth++
		return v
	}
	panic(p.peekError(errValue))
}

func (p *parser) ident(rest string) {
	for k := 0; k < len(rest); k++ {
		if p.i >= len(p.b) {
			panic(p.error(errEOFValue))
		}
		c := p.b[p.i]
		p.i++
		if c != rest[k] {
			panic(p.error(errIdent))
		}
	}
}

func (p *parser) list() Array {
	out := Array{}
	first := true
	for {
		c := p.whitespace()
		if c == ']' {
			p.i++
			return out
		}
		switch {
		case c == ',' && !first:
			p.i++
			c = p.whitespace()
		case c == -1:
			panic(p.peekError(errEOFList))
		case first:
			first = false
		default:
			panic(p.peekError(errListCommaOrEnd))
		}
		if c == ']' {
			panic(p.peekError(errTrailingComma))
		}
		if c == -1 {
			panic(p.peekError(errEOFValue))
		}
		out = append(out, p.value())
	}
}

func (p *parser) object() Object {
	out := Object{}
	first := true
	for {
		c := p.whitespace()
		if c == '}' {
			p.i++
			return out
		}
		switch {
		case c == ',' && !first:
			p.i++
			c = p.whitespace()
		case c == -1:
			panic(p.peekError(errEOFObject))
		case first:
			first = false
		default:
			panic(p.peekError(errObjectCommaOrEnd))
		}
		if c == '}' {
			panic(p.peekError(errTrailingComma))
		}
		if c == -1 {
			panic(p.peekError(errEOFValue))
		}
		if c != '"' {
			panic(p.peekError(errKey))
		}
		p.i++
		key := p.string()
		c = p.whitespace()
		switch c {
		case ':':
			p.i++
		case -1:
			panic(p.peekError(errEOFObject))
		default:
			panic(p.peekError(errColon))
		}
		out[key] = p.value()
	}
}

func (p *parser) string() string {
	var out strings.Builder
	start := p.i
	for {
		for p.i < len(p.b) && p.b[p.i] != '"' && p.b[p.i] != '\\' && p.b[p.i] >= 0x20 {
			p.i++
		}
		if p.i == len(p.b) {
			panic(p.error(errEOFString))
		}
		switch p.b[p.i] {
		case '"':
			out.WriteString(p.b[start:p.i])
			p.i++
			return out.String()
		case '\\':
			out.WriteString(p.b[start:p.i])
			p.i++
			p.escape(&out)
			start = p.i
		default:
			p.i++
			panic(p.error(errControl))
		}
	}
}

func (p *parser) escape(out *strings.Builder) {
	if p.i >= len(p.b) {
		panic(p.error(errEOFString))
	}
	c := p.b[p.i]
	p.i++
	switch c {
	case '"', '\\', '/':
		out.WriteByte(c)
	case 'b':
		out.WriteByte('\b')
	case 'f':
		out.WriteByte('\f')
	case 'n':
		out.WriteByte('\n')
	case 'r':
		out.WriteByte('\r')
	case 't':
		out.WriteByte('\t')
	case 'u':
		out.WriteRune(p.unicodeEscape())
	default:
		panic(p.error(errEscape))
	}
}

func (p *parser) hex4() rune {
	if p.i+4 > len(p.b) {
		p.i = len(p.b)
		panic(p.error(errEOFString))
	}
	n, ok := rune(0), true
	for k := 0; k < 4; k++ {
		c := p.b[p.i+k]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			ok = false
		}
		n = n*16 + rune(d)
	}
	p.i += 4
	if !ok {
		panic(p.error(errEscape))
	}
	return n
}

func (p *parser) unicodeEscape() rune {
	n := p.hex4()
	if n >= 0xDC00 && n <= 0xDFFF {
		panic(p.error(errLoneSurrogate))
	}
	if n < 0xD800 || n > 0xDBFF {
		return n
	}
	for _, expected := range []byte{'\\', 'u'} {
		if p.i >= len(p.b) {
			panic(p.error(errEOFString))
		}
		c := p.b[p.i]
		p.i++
		if c != expected {
			panic(p.error(errHexEnd))
		}
	}
	n2 := p.hex4()
	if n2 < 0xDC00 || n2 > 0xDFFF {
		panic(p.error(errLoneSurrogate))
	}
	return 0x10000 + (n-0xD800)<<10 + (n2 - 0xDC00)
}

// number is serde_json's parse_integer / parse_number with its float
// arithmetic: the digits as a u64 significand, converted to f64 and scaled
// by one power of ten.
func (p *parser) number(positive bool) Value {
	if p.i >= len(p.b) {
		panic(p.error(errEOFValue))
	}
	first := p.b[p.i]
	p.i++
	var sig uint64
	switch {
	case first == '0':
		if isDigit(p.peek()) {
			panic(p.peekError(errNumber))
		}
	case first >= '1' && first <= '9':
		sig = uint64(first - '0')
		for isDigit(p.peek()) {
			d := uint64(p.peek() - '0')
			if sig > (math.MaxUint64-d)/10 {
				return Float(p.longInteger(positive, sig))
			}
			p.i++
			sig = sig*10 + d
		}
	default:
		panic(p.error(errNumber))
	}
	switch p.peek() {
	case '.':
		return Float(p.decimal(positive, sig, 0))
	case 'e', 'E':
		return Float(p.exponent(positive, sig, 0))
	}
	if positive {
		return PosInt(sig)
	}
	// `(significand as i64).wrapping_neg() >= 0`: -0 and below i64::MIN are floats.
	if sig == 0 || sig > 1<<63 {
		return Float(-float64(sig))
	}
	if sig == 1<<63 {
		return NegInt(math.MinInt64)
	}
	return NegInt(-int64(sig))
}

func (p *parser) longInteger(positive bool, sig uint64) float64 {
	exponent := int64(0)
	for {
		switch c := p.peek(); {
		case isDigit(c):
			p.i++
			exponent++
		case c == '.':
			return p.decimal(positive, sig, exponent)
		case c == 'e' || c == 'E':
			return p.exponent(positive, sig, exponent)
		default:
			return p.fromParts(positive, sig, exponent)
		}
	}
}

func (p *parser) decimal(positive bool, sig uint64, exponentBefore int64) float64 {
	p.i++
	after := int64(0)
	for isDigit(p.peek()) {
		d := uint64(p.peek() - '0')
		if sig > (math.MaxUint64-d)/10 {
			// Further digits are ignored.
			for isDigit(p.peek()) {
				p.i++
			}
			if c := p.peek(); c == 'e' || c == 'E' {
				return p.exponent(positive, sig, exponentBefore+after)
			}
			return p.fromParts(positive, sig, exponentBefore+after)
		}
		p.i++
		sig = sig*10 + d
		after--
	}
	if after == 0 {
		if p.i < len(p.b) {
			panic(p.peekError(errNumber))
		}
		panic(p.peekError(errEOFValue))
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		return p.exponent(positive, sig, exponentBefore+after)
	}
	return p.fromParts(positive, sig, exponentBefore+after)
}

func (p *parser) exponent(positive bool, sig uint64, startingExp int64) float64 {
	p.i++
	positiveExp := true
	switch p.peek() {
	case '+':
		p.i++
	case '-':
		p.i++
		positiveExp = false
	}
	if p.i >= len(p.b) {
		panic(p.error(errEOFValue))
	}
	d := int(p.b[p.i])
	p.i++
	if !isDigit(d) {
		panic(p.error(errNumber))
	}
	exp := int64(d - '0')
	for isDigit(p.peek()) {
		digit := int64(p.peek() - '0')
		p.i++
		if exp*10+digit > math.MaxInt32 {
			if sig != 0 && positiveExp {
				panic(p.error(errRange))
			}
			for isDigit(p.peek()) {
				p.i++
			}
			if positive {
				return 0
			}
			return math.Copysign(0, -1)
		}
		exp = exp*10 + digit
	}
	final := startingExp - exp
	if positiveExp {
		final = startingExp + exp
	}
	final = max(math.MinInt32, min(math.MaxInt32, final))
	return p.fromParts(positive, sig, final)
}

func (p *parser) fromParts(positive bool, sig uint64, exponent int64) float64 {
	f := float64(sig)
	for {
		a := exponent
		if a < 0 {
			a = -a
		}
		if a < int64(len(pow10)) {
			if exponent >= 0 {
				f *= pow10[a]
				if math.IsInf(f, 0) {
					panic(p.error(errRange))
				}
			} else {
				f /= pow10[a]
			}
			break
		}
		if f == 0 {
			break
		}
		if exponent >= 0 {
			panic(p.error(errRange))
		}
		f /= 1e308
		exponent += 308
	}
	if positive {
		return f
	}
	return -f
}
