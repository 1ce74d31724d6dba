package text

import "testing"

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
