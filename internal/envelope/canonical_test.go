package envelope

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"whitespace is dropped", " { \"a\" :\t[ 1 ,\n2 ] }\r\n", `{"a":[1,2]}`},
		{"html characters stay raw", `"<script>&amp;</script>"`, `"<script>&amp;</script>"`},
		{"escaped solidus is unescaped", `"a\/b"`, `"a/b"`},
		{"line and paragraph separators stay raw", `"\u2028\u2029"`, "\"\u2028\u2029\""},
		{"short escapes are kept", `"\b\f\n\r\t\"\\"`, `"\b\f\n\r\t\"\\"`},
		{"other controls become lowercase \\u escapes", `"\u0000\u001F\u007f"`, "\"\\u0000\\u001f\x7f\""},
		{"escaped letters become raw", `"\u0041\u00e9\u4E2D"`, `"Aé中"`},
		{"surrogate pair escape becomes raw emoji", `"\uD83D\uDE00"`, `"😀"`},
		{"lone high surrogate stays escaped, lowercase", `"\uD83Dx"`, `"\ud83dx"`},
		{"lone low surrogate stays escaped", `"\uDE00\uD83D"`, `"\ude00\ud83d"`},
		{"invalid UTF-8 becomes one U+FFFD per maximal subpart", "\"a\xe2\x82b\xffc\"", "\"a\uFFFDb\uFFFDc\""},
		{"1.0 is 1", `1.0`, `1`},
		{"negative zero is 0", `[-0, -0.0, 0e5]`, `[0,0,0]`},
		{"large exponent", `1e21`, `1e+21`},
		{"just below exponent form", `1e20`, `100000000000000000000`},
		{"small exponent", `1e-7`, `1e-7`},
		{"just above exponent form", `0.000001`, `0.000001`},
		{"fraction with exponent", `1.5E-7`, `1.5e-7`},
		{"shortest round trip", `0.1`, `0.1`},
		{"beyond 2^53 loses precision as in JavaScript", `9007199254740993`, `9007199254740992`},
		{"huge integer", `123456789012345678901234567890`, `1.2345678901234568e+29`},
		{"overflow is null", `[1e400, -1e400]`, `[null,null]`},
		{"underflow is 0", `1e-400`, `0`},
		{"integer keys first, ascending", `{"b":1,"2":2,"1":3,"a":4,"4294967295":5,"01":6}`, `{"1":3,"2":2,"b":1,"a":4,"4294967295":5,"01":6}`},
		{"largest array index is an index", `{"x":1,"4294967294":2}`, `{"4294967294":2,"x":1}`},
		{"duplicate key keeps first position and last value", `{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{"duplicate index key", `{"1":"x","0":"y","1":"z"}`, `{"0":"y","1":"z"}`},
		{"duplicate spelled differently is the same key", `{"é":1,"\u00e9":2}`, `{"é":2}`},
		{"duplicate replacing a container", `{"a":{"x":1},"b":0,"a":[2]}`, `{"a":[2],"b":0}`},
		{"scalars at top level", `null`, `null`},
		{"empty containers", `[{},[],""]`, `[{},[],""]`},
		{"__proto__ is an ordinary key", `{"__proto__":1,"a":2}`, `{"__proto__":1,"a":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical([]byte(tt.in))
			if err != nil {
				t.Fatalf("Canonical(%q) error: %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("Canonical(%q)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestCanonicalManyKeysDeduplicates(t *testing.T) {
	// More than 16 members takes the map-based duplicate check.
	var in, want strings.Builder
	in.WriteString("{")
	want.WriteString("{")
	for i := range 20 {
		if i > 0 {
			in.WriteString(",")
			want.WriteString(",")
		}
		k := string(rune('a' + i))
		in.WriteString(`"` + k + `":1`)
		if i == 3 {
			want.WriteString(`"` + k + `":2`)
		} else {
			want.WriteString(`"` + k + `":1`)
		}
	}
	in.WriteString(`,"d":2}`)
	want.WriteString("}")
	got, err := Canonical([]byte(in.String()))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Errorf("got  %s\nwant %s", got, want.String())
	}
}

func TestCanonicalRejectsInvalidJSON(t *testing.T) {
	tests := []struct {
		in      string
		wantMsg string
	}{
		{``, "byte offset 0: unexpected end of input"},
		{`{"a" 1}`, "byte offset 5: unexpected '1', want ':'"},
		{`[1,]`, "byte offset 3: unexpected ']', want a value"},
		{`{"a":1,}`, "byte offset 7: unexpected '}', want a string key"},
		{`[1 2]`, "byte offset 3: unexpected '2', want ',' or ']'"},
		{`{"a":1]`, "byte offset 6: unexpected ']', want ',' or '}'"},
		{`{a:1}`, "byte offset 1: unexpected 'a', want a string key"},
		{`01`, "byte offset 0: number with a leading zero"},
		{`-`, "byte offset 1: number without digits"},
		{`1.`, "byte offset 2: number without digits after '.'"},
		{`1e+`, "byte offset 3: number without exponent digits"},
		{`NaN`, "byte offset 0: unexpected 'N', want a value"},
		{`tru`, "byte offset 0: unexpected 't', want a value"},
		{`"abc`, "byte offset 0: unterminated string"},
		{"\"a\nb\"", "byte offset 2: control character 0x0a in string"},
		{`"\x"`, `byte offset 1: bad escape \x`},
		{`"\u12G4"`, `byte offset 1: bad \u escape`},
		{`[1] x`, "byte offset 4: unexpected 'x', want end of input"},
		{"\ufeff{}", "byte offset 0: unexpected byte 0xef, want a value"},
		{`[[1]`, "byte offset 4: unexpected end of input, want ',' or a closing bracket"},
	}
	for _, tt := range tests {
		_, err := Canonical([]byte(tt.in))
		if err == nil {
			t.Errorf("Canonical(%q) succeeded, want error", tt.in)
			continue
		}
		if !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("Canonical(%q) error %v does not wrap ErrInvalidJSON", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("Canonical(%q) error %q, want it to contain %q", tt.in, err, tt.wantMsg)
		}
	}
}

func TestCanonicalDeepNesting(t *testing.T) {
	deepArray := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	got, err := Canonical([]byte(deepArray))
	if err != nil {
		t.Fatalf("nesting of exactly MaxDepth: %v", err)
	}
	if string(got) != deepArray {
		t.Errorf("deep array changed")
	}

	deepObject := strings.Repeat(`{"a": `, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)
	got, err = Canonical([]byte(deepObject))
	if err != nil {
		t.Fatalf("nested objects of MaxDepth: %v", err)
	}
	if want := strings.ReplaceAll(deepObject, " ", ""); string(got) != want {
		t.Errorf("deep object changed")
	}

	tooDeep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	_, err = Canonical([]byte(tooDeep))
	if !errors.Is(err, ErrTooDeep) {
		t.Fatalf("nesting of MaxDepth+1: error %v, want ErrTooDeep", err)
	}
	if !strings.Contains(err.Error(), "byte offset 10000") {
		t.Errorf("error %q does not name the offset of the offending bracket", err)
	}
}
