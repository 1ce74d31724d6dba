package jsonvalue

import "testing"

func TestNumbersKeepEveryDigit(t *testing.T) {
	v, err := Parse(`{"seed":12345678901234567,"t":1.0,"s":"<é>","a":[null,true]}`)
	if err != nil {
		t.Fatal(err)
	}
	got := Stringify(v)
	want := `{"a":[null,true],"s":"<é>","seed":12345678901234567,"t":1.0}`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if Kind(v.(Object)["seed"]) != "a number" || Kind(v.(Object)["a"]) != "an array" || Kind(v) != "an object" {
		t.Fatal("kinds")
	}
	for _, bad := range []string{"", "{", "[1]x", "nul"} {
		if _, err := Parse(bad); err == nil {
			t.Fatalf("%q parsed", bad)
		}
	}
}
