// Package text holds the string helpers the Rust SDK (plugins/sdk/src/text.rs)
// and the Rust standard library give the Rust plugins, with the same
// semantics, so Go plugins produce byte-identical messages: Unicode trimming,
// byte-bounded excerpts, lossy UTF-8 decoding and Rust's `{:?}` of a string.
package text

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Trim is Rust's `str::trim`: Unicode White_Space removed at both ends
// (unicode.IsSpace is exactly that property).
func Trim(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }

// TrimStart is Rust's `str::trim_start`.
func TrimStart(s string) string { return strings.TrimLeftFunc(s, unicode.IsSpace) }

// ASCIILower is Rust's `to_ascii_lowercase`: only A-Z change, so byte
// offsets stay valid for the original text.
func ASCIILower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// Truncate is the longest prefix of text of at most maxBytes bytes that ends
// on a character boundary.
func Truncate(text string, maxBytes int) string {
	if len(text) <= maxBytes {
		return text
	}
	end := maxBytes
	for end > 0 && !utf8.RuneStart(text[end]) {
		end--
	}
	return text[:end]
}

// Excerpt is text cut to at most maxBytes bytes, with "…" appended when it
// was cut.
func Excerpt(text string, maxBytes int) string {
	cut := Truncate(text, maxBytes)
	if len(cut) == len(text) {
		return cut
	}
	return cut + "…"
}

// BodyText is body decoded as UTF-8 with every maximal invalid subsequence
// replaced by U+FFFD, exactly as Rust's `String::from_utf8_lossy` does
// (Go's own decoders replace each invalid byte on its own instead).
func BodyText(body []byte) string {
	if utf8.Valid(body) {
		return string(body)
	}
	var out strings.Builder
	out.Grow(len(body) + 16)
	for i := 0; i < len(body); {
		if body[i] < utf8.RuneSelf {
			out.WriteByte(body[i])
			i++
			continue
		}
		r, size := utf8.DecodeRune(body[i:])
		if r != utf8.RuneError || size > 1 {
			out.Write(body[i : i+size])
			i += size
			continue
		}
		out.WriteRune(utf8.RuneError)
		i += invalidPrefixLen(body[i:])
	}
	return out.String()
}

// invalidPrefixLen is the length of the maximal subpart of an ill-formed
// sequence at the start of b (Unicode §3.9, as Rust's Utf8Chunks): the
// longest prefix of a well-formed sequence, or one byte.
func invalidPrefixLen(b []byte) int {
	first := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case first >= 0xC2 && first <= 0xDF:
		need = 1
	case first == 0xE0:
		need, lo = 2, 0xA0
	case first >= 0xE1 && first <= 0xEC, first == 0xEE, first == 0xEF:
		need = 2
	case first == 0xED:
		need, hi = 2, 0x9F
	case first == 0xF0:
		need, lo = 3, 0x90
	case first >= 0xF1 && first <= 0xF3:
		need = 3
	case first == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		c := b[n]
		if k > 0 {
			lo, hi = 0x80, 0xBF
		}
		if c < lo || c > hi {
			break
		}
		n++
	}
	return n
}

// DebugStr is Rust's `{:?}` of a string: quoted, with `\"`, `\\`, `\n`, `\r`,
// `\t`, `\0` and `\u{..}` for characters that are not printable (control,
// format, separator other than space, unassigned, private use) or that
// extend a grapheme (combining marks), as Rust's `str::escape_debug` does.
func DebugStr(s string) string {
	var out strings.Builder
	out.Grow(len(s) + 2)
	out.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			out.WriteString(`\"`)
		case r == '\\':
			out.WriteString(`\\`)
		case r == '\n':
			out.WriteString(`\n`)
		case r == '\r':
			out.WriteString(`\r`)
		case r == '\t':
			out.WriteString(`\t`)
		case r == 0:
			out.WriteString(`\0`)
		case r < 0x7f && r >= 0x20:
			out.WriteRune(r)
		case !unicode.IsPrint(r) || unicode.In(r, unicode.Mn, unicode.Me):
			out.WriteString(`\u{` + strconv.FormatInt(int64(r), 16) + `}`)
		default:
			out.WriteRune(r)
		}
	}
	out.WriteByte('"')
	return out.String()
}
