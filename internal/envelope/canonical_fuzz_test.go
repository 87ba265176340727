package envelope

import (
	"bytes"
	"testing"
)

// FuzzCanonical checks that canonical output is a fixed point: a receiver that re-serialises what we
// sent computes the same bytes we signed, whatever the input was.
func FuzzCanonical(f *testing.F) {
	for _, seed := range []string{
		`{"b":1,"2":2,"1":3,"a":4,"4294967295":5,"01":6}`,
		`[1.0,1e21,1e-7,-0,0.1,123456789012345678901234567890,9007199254740993]`,
		`"\ud800\udc00\ud800 \u2028<>&\u0001"`,
		`{"a":1,"a":{"a":[],"a":{}}}`,
		"\"\xe2\x82\xff\"",
		`[[[[[[[[[]]]]]]]]]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		once, err := Canonical(in)
		if err != nil {
			return
		}
		twice, err := Canonical(once)
		if err != nil {
			t.Fatalf("Canonical rejected its own output %q: %v", once, err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent for %q:\n once %q\ntwice %q", in, once, twice)
		}
	})
}
