// Package text holds the string helpers of the Rust standard library the
// Rust plugins' configuration messages rely on, with the same semantics, so
// a Go plugin refuses a configuration in the same words: Unicode trimming,
// ASCII lowercasing and Rust's `{:?}` of a string.
package text

import (
	"strconv"
	"strings"
	"unicode"
)

// Trim is Rust's `str::trim`: Unicode White_Space removed at both ends
// (unicode.IsSpace is exactly that property).
func Trim(s string) string { return strings.TrimFunc(s, unicode.IsSpace) }

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
