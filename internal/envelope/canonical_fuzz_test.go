package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzCanonical checks what a receiver relies on, whatever the input: the canonical output is valid JSON and
// valid UTF-8, it is a fixed point (a receiver that re-serialises what we sent computes the same bytes we
// signed), it means the same as the input, and Canonical refuses exactly the texts that are not JSON.
func FuzzCanonical(f *testing.F) {
	for _, seed := range []string{
		`{"b":1,"2":2,"1":3,"a":4,"4294967295":5,"01":6}`,
		`[1.0,1e21,1e-7,-0,0.1,123456789012345678901234567890,9007199254740993]`,
		`"\ud800\udc00\ud800 \u2028<>&\u0001"`,
		`{"a":1,"a":{"a":[],"a":{}}}`,
		"\"\xe2\x82\xff\"",
		`[[[[[[[[[]]]]]]]]]`,
		`{"order_id":"ord_8f3c","total":{"amount":129.95,"currency":"EUR"},"items":[{"sku":"A-1","qty":2}],"note":null,"gift":false}`,
		`{"big":1e400,"small":-1e-400,"neg":-12.5E+3}`,
		` {"a" : [ true , false , null ] } `,
		`{"a":1,}`,
		`[01]`,
		"{\"\\u0000\":\"\t\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		once, err := Canonical(in)
		if errors.Is(err, ErrTooDeep) {
			return
		}
		if valid := json.Valid(in); valid != (err == nil) {
			t.Fatalf("Canonical(%q) error %v, but encoding/json says valid=%v", in, err, valid)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("error %v for %q wraps neither ErrInvalidJSON nor ErrTooDeep", err, in)
			}
			return
		}
		if !json.Valid(once) || !utf8.Valid(once) {
			t.Fatalf("output for %q is not valid JSON in UTF-8: %q", in, once)
		}
		twice, err := Canonical(once)
		if err != nil {
			t.Fatalf("Canonical rejected its own output %q: %v", once, err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("not idempotent for %q:\n once %q\ntwice %q", in, once, twice)
		}
		// Same meaning, where encoding/json reads the input the way JSON.parse does: valid UTF-8 (invalid bytes
		// are replaced differently) and every number a finite double (Canonical writes null for 1e400).
		var before, after any
		if !utf8.Valid(in) || json.Unmarshal(in, &before) != nil {
			return
		}
		if err := json.Unmarshal(once, &after); err != nil {
			t.Fatalf("output %q does not decode: %v", once, err)
		}
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("meaning changed for %q:\n  in %#v\n out %#v (%q)", in, before, after, once)
		}
	})
}
