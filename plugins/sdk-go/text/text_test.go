package text

import "testing"

func TestTruncateAndExcerpt(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want string
	}{{"héllo", 2, "h"}, {"héllo", 3, "hé"}, {"abc", 10, "abc"}}
	for _, c := range cases {
		if got := Truncate(c.in, c.max); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
	if got := Excerpt("abcdef", 3); got != "abc…" {
		t.Errorf("Excerpt = %q", got)
	}
	if got := Excerpt("abc", 3); got != "abc" {
		t.Errorf("Excerpt = %q", got)
	}
}

// Rust's String::from_utf8_lossy replaces each maximal invalid subsequence
// with one U+FFFD.
func TestBodyTextIsLossyLikeRust(t *testing.T) {
	for in, want := range map[string]string{
		"plain":              "plain",
		"a\xe2\x82b":         "a\ufffdb",
		"\xf0\x9f\x98":       "\ufffd",
		"\xc0\x80":           "\ufffd\ufffd",
		"\xed\xa0\x80x":      "\ufffd\ufffd\ufffdx",
		"\xff\xfe":           "\ufffd\ufffd",
		"ok\xf4\x90\x80\x80": "ok\ufffd\ufffd\ufffd\ufffd",
	} {
		if got := BodyText([]byte(in)); got != want {
			t.Errorf("BodyText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDebugStrLikeRust(t *testing.T) {
	for in, want := range map[string]string{
		`base_ulr`:      `"base_ulr"`,
		"a\"b\\c\n\t\r": `"a\"b\\c\n\t\r"`,
		"\x00\x01\x7f":  `"\0\u{1}\u{7f}"`,
		"ünï 😀":         `"ünï 😀"`,
		"e\u0301":       `"e\u{301}"`,
		"\u00ad":        `"\u{ad}"`,
	} {
		if got := DebugStr(in); got != want {
			t.Errorf("DebugStr(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestTrimIsUnicodeWhiteSpace(t *testing.T) {
	if got := Trim("\u3000 x \u0085"); got != "x" {
		t.Errorf("Trim = %q", got)
	}
	if got := ASCIILower("ÀB"); got != "Àb" {
		t.Errorf("ASCIILower = %q", got)
	}
}
