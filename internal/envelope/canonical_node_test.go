package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// nodeBinary is the JavaScript runtime receivers in both product documents run. The test fails, never
// skips, without it: it is the only proof that our bytes are what a receiver recomputes.
const nodeBinary = "node" // found on PATH; `make test` installs it when missing

// nodeResult is what a receiver computes for one body: JSON.stringify(JSON.parse(body)).
type nodeResult struct {
	OK  bool   `json:"ok"`
	Out string `json:"out"` // base64
	Err string `json:"err"`
}

// nodeReserialise runs node once over all inputs. The body is decoded from bytes as Node's Buffer does
// for express.json(), so invalid UTF-8 meets the same replacement a real receiver applies.
func nodeReserialise(t *testing.T, inputs [][]byte) []nodeResult {
	t.Helper()
	const script = `
const inputs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const results = inputs.map((b64) => {
  try {
    const text = Buffer.from(b64, 'base64').toString('utf8');
    return { ok: true, out: Buffer.from(JSON.stringify(JSON.parse(text)), 'utf8').toString('base64') };
  } catch (e) {
    return { ok: false, err: String(e) };
  }
});
process.stdout.write(JSON.stringify(results));
`
	encoded := make([]string, len(inputs))
	for i, in := range inputs {
		encoded[i] = base64.StdEncoding.EncodeToString(in)
	}
	stdin, err := json.Marshal(encoded)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nodeBinary, "-e", script)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("running %s: %v\n%s", nodeBinary, err, stderr.String())
	}
	var results []nodeResult
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("decoding node output: %v", err)
	}
	if len(results) != len(inputs) {
		t.Fatalf("node returned %d results for %d inputs", len(results), len(inputs))
	}
	return results
}

// hostileInputs are JSON texts chosen to break a naive encoder, plus texts JSON.parse must reject.
func hostileInputs() []string {
	inputs := []string{
		`{"event":"user.registered","tenant_id":123,"data":{"email":"john@example.com"}}`,
		`"héllo wörld ñ 中文 日本語 한국어 עברית العربية"`,
		`"\u00e9\u00E9é\u4e2d\uFFFF\uFEFF"`,
		`"😀🇦🇪👩‍👩‍👧‍👦"`, `"\ud83d\ude00\uD83D\uDE00"`,
		`"<script>alert('x')</script> & &amp; \u003c\u003e\u0026"`,
		`"\u2028\u2029"`, "\"\u2028\u2029\"", `"\u0085\u00a0\u200b"`,
		`"\b\f\n\r\t\"\\\/"`, `"\u0000\u0001\u0007\u000b\u000e\u001b\u001f\u007f\u0080\u009f"`, "\"\x7f\"",
		`"\ud800"`, `"\udfff"`, `"\udc00\ud800"`, `"\ud800\ud800\udc00"`, `"\ud83d x \ude00"`, `"\ud83d\u0041"`,
		`{"\ud800":1,"\ud800":2,"\udc00":3}`,
		"\"bad \xff \xc0\xaf \xe2\x82 \xed\xa0\x80 \xf0\x9f\x98 \xf4\x90\x80\x80 end\"",
		`1.0`, `1e21`, `1e20`, `1e-7`, `1e-6`, `-0`, `-0.0`, `0.1`, `0.3`, `-1.5e-7`, `1E+2`, `2.5e-5`,
		`123456789012345678901234567890`, `9007199254740993`, `9007199254740992`, `-9007199254740993`,
		`1.7976931348623157e308`, `5e-324`, `1e309`, `-1e309`, `1e-400`, `4.35`, `0.000001234`, `1234567.125`,
		`100000000000000000000000`, `0.1e1`, `12345678901234567`, `999999999999999999999`, `1.0000000000000002`,
		`[1, 2.50, -3e0, 4E-0, 0.0000001, 1e-7, 1.23e-5]`,
		`{"b":1,"2":2,"1":3,"a":4,"4294967295":5,"01":6}`,
		`{"4294967294":1,"4294967295":2,"4294967296":3,"0":4,"-1":5,"1.0":6," 1":7,"1 ":8,"10":9,"9":10}`,
		`{"a":1,"b":2,"a":3}`, `{"1":1,"0":2,"1":3,"x":4,"x":{"y":1,"y":[2]}}`, `{"a":{"x":1},"b":0,"a":[2]}`,
		`{"__proto__":{"x":1},"constructor":2,"toString":3}`, `{"":1,"":2}`,
		`{}`, `[]`, `""`, `null`, `true`, `false`, `[[],{},[{}],{"a":[]}]`,
		" \t\n\r{ \"a\" : [ 1 , 2 ] } \r\n",
		// Texts JSON.parse rejects; Canonical must reject them too.
		``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{'a':1}`, `{a:1}`, `01`, `-01`, `1.`, `.5`, `+1`, `1e`, `0x10`,
		`NaN`, `Infinity`, `-Infinity`, `undefined`, `tru`, `nul`, `[1 2]`, `"\x"`, `"\u12"`, `"\u12G4"`, "\"a\nb\"",
		"\"\t\"", `"abc`, `[1] [2]`, "\ufeff{}", "\u00a0{}", `{"a":1]`, `[1}`,
	}

	// Deep nesting, within what node's recursive JSON.stringify manages on its default stack.
	const depth = 2000
	inputs = append(inputs,
		strings.Repeat("[", depth)+strings.Repeat("]", depth),
		strings.Repeat(`{"a":`, depth)+`{"2":1,"1":2}`+strings.Repeat("}", depth),
		strings.Repeat(`[{"k":`, depth/2)+`1`+strings.Repeat("}]", depth/2),
	)

	// Random doubles across the whole exponent range exercise shortest-digit formatting.
	r := rand.New(rand.NewPCG(1, 2))
	var nums strings.Builder
	nums.WriteString("[")
	for i := range 3000 {
		if i > 0 {
			nums.WriteString(",")
		}
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			f = 0
		}
		switch i % 3 {
		case 0:
			fmt.Fprintf(&nums, "%g", f)
		case 1:
			fmt.Fprintf(&nums, "%.17e", r.NormFloat64()*math.Pow(10, float64(r.IntN(50)-25)))
		default:
			fmt.Fprintf(&nums, "%d.%d", r.IntN(1e9), r.IntN(1e6))
		}
	}
	nums.WriteString("]")
	inputs = append(inputs, nums.String())

	// Random strings of code units, including lone surrogates and controls, as escapes and raw.
	for range 50 {
		var s strings.Builder
		s.WriteString(`"`)
		for range 40 {
			switch r.IntN(4) {
			case 0:
				fmt.Fprintf(&s, `\u%04x`, r.IntN(0x10000))
			case 1:
				s.WriteRune(rune(0x20 + r.IntN(0x10000-0x20)))
			case 2:
				s.WriteRune(rune(0x10000 + r.IntN(0x100000)))
			default:
				s.WriteString(`\"\\\/\b\f\n\r\t`[r.IntN(16):][:1])
			}
		}
		s.WriteString(`"`)
		inputs = append(inputs, s.String())
	}
	return inputs
}

func TestCanonicalMatchesNode(t *testing.T) {
	texts := hostileInputs()
	inputs := make([][]byte, len(texts))
	for i, s := range texts {
		inputs[i] = []byte(s)
	}
	results := nodeReserialise(t, inputs)
	for i, in := range inputs {
		got, err := Canonical(in)
		res := results[i]
		switch {
		case !res.OK && err == nil:
			t.Errorf("node rejects %q (%s) but Canonical accepted it as %q", clip(in), res.Err, clip(got))
		case res.OK && err != nil:
			t.Errorf("node accepts %q but Canonical failed: %v", clip(in), err)
		case res.OK:
			want, _ := base64.StdEncoding.DecodeString(res.Out)
			if !bytes.Equal(got, want) {
				t.Errorf("Canonical(%q)\n got %q\nnode %q", clip(in), clip(got), clip(want))
			}
		}
	}
}

// TestBuildMatchesNode proves the property the product documents' verifiers rely on: a receiver's
// JSON.stringify of the parsed body is the body itself, byte for byte, for every format.
func TestBuildMatchesNode(t *testing.T) {
	var bodies [][]byte
	var names []string
	for _, text := range hostileInputs() {
		if _, err := Canonical([]byte(text)); err != nil {
			continue
		}
		for _, format := range []Format{FormatEnvelope, FormatCollection, FormatCloudEvents} {
			ev := Event{
				ID: "evt_\u2028\"<1>", Type: "user.registered\x01", TenantID: "123", Collection: "posts\U0001F600",
				OccurredAt: time.Date(2025, 11, 16, 10, 30, 0, 5000, time.UTC), Source: "/hookpost/ns/sub", Data: []byte(text),
			}
			for _, tenant := range []string{"123", "007", "9007199254740993", "", "ten\xffant"} {
				ev.TenantID = tenant
				body, _, err := Build(format, ev)
				if err != nil {
					t.Fatalf("Build(%s, data %q): %v", format, clip([]byte(text)), err)
				}
				bodies = append(bodies, body)
				names = append(names, fmt.Sprintf("%s tenant %q data %q", format, tenant, clip([]byte(text))))
			}
		}
	}
	results := nodeReserialise(t, bodies)
	for i, body := range bodies {
		if !results[i].OK {
			t.Errorf("%s: node cannot parse the body: %s", names[i], results[i].Err)
			continue
		}
		want, _ := base64.StdEncoding.DecodeString(results[i].Out)
		if !bytes.Equal(body, want) {
			t.Errorf("%s:\nbody %q\nnode %q", names[i], clip(body), clip(want))
		}
	}
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
