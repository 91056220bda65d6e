package inference

import "testing"

// TestReplaceInvalidUTF8 checks the replacement against Python's
// bytes.decode("utf-8", errors="replace") (the expected values were printed by CPython 3.11).
func TestReplaceInvalidUTF8(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a\x9b\x9bb", "a\ufffd\ufffdb"},
		{"\xe3\x81", "\ufffd"},
		{"\xe3\x81a", "\ufffda"},
		{"\xe0\x80\x80", "\ufffd\ufffd\ufffd"},
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"},
		{"\xf0\x9f\x98", "\ufffd"},
		{"\xf0\x9f\x98\x80", "\U0001F600"},
		{"\xc3", "\ufffd"},
		{"\xc3\xa9\xff", "\u00e9\ufffd"},
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
	} {
		if got := replaceInvalidUTF8(c.in); got != c.want {
			t.Errorf("replaceInvalidUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
