package signing

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// fuzzStandardSecret is a valid Standard Webhooks secret (24 key bytes), fixed so failures reproduce.
const fuzzStandardSecret = readmeSecret

// FuzzSignThenVerify signs arbitrary messages with every scheme and checks that the verifier accepts exactly
// what was signed: the own signature passes, and changing any one byte of the body, the signature, the id or
// the timestamp fails. A receiver relies on the second half: a verifier that accepts a near miss accepts a
// tampered request.
func FuzzSignThenVerify(f *testing.F) {
	f.Add([]byte(doc000Body), "evt_1", int64(1763289000), uint16(7), byte(1))
	f.Add([]byte(doc002Body), readmeID, int64(readmeUnix), uint16(0), byte(0x80))
	f.Add([]byte(readmeBody), "0190b2c4-7e1a-7c3e-9d2f-4b5a6c7d8e9f", int64(0), uint16(43), byte(3))
	f.Add([]byte{}, "x", int64(-1), uint16(1), byte(0xff))
	f.Add([]byte("{\"a\":\"\xff\u2028\"}"), "id.with.dots", int64(9999999999), uint16(60), byte(' '))
	f.Fuzz(func(t *testing.T, body []byte, id string, unix int64, at uint16, flip byte) {
		if flip == 0 {
			flip = 1 // a change of zero is no change
		}
		t.Run("HMACSHA256Hex", func(t *testing.T) {
			key := []byte(hexSecret)
			signature := SignHMACHex(key, body)
			if err := VerifyHMACHex(key, body, signature); err != nil {
				t.Fatalf("own signature %q rejected: %v", signature, err)
			}
			if len(body) > 0 {
				changed := bytes.Clone(body)
				changed[int(at)%len(changed)] ^= flip
				if VerifyHMACHex(key, changed, signature) == nil {
					t.Fatalf("body changed at byte %d still verifies", int(at)%len(body))
				}
			}
			changed := []byte(signature)
			i := int(at) % len(changed)
			changed[i] ^= flip
			// Upper-case hex spells the same bytes and is accepted on purpose (hmac_hex.go).
			if same, err := hex.DecodeString(string(changed)); err == nil && bytes.Equal(same, mustHex(t, signature)) {
				return
			}
			if VerifyHMACHex(key, body, string(changed)) == nil {
				t.Fatalf("signature %q changed at byte %d to %q still verifies", signature, i, changed)
			}
		})
		t.Run("StandardWebhooks", func(t *testing.T) {
			if id == "" {
				id = "evt"
			}
			m := Message{ID: id, Timestamp: time.Unix(unix, 0), Body: body}
			h, err := Headers(SchemeStandardWebhooks, "", fuzzStandardSecret, m)
			if err != nil {
				t.Fatalf("sign: %v", err)
			}
			now := m.Timestamp
			verify := func(h http.Header, body []byte) error {
				return VerifyStandard(fuzzStandardSecret, h, body, now, 5*time.Minute)
			}
			if err := verify(h, body); err != nil {
				t.Fatalf("own headers %v rejected: %v", h, err)
			}
			if len(body) > 0 {
				changed := bytes.Clone(body)
				changed[int(at)%len(changed)] ^= flip
				if verify(h, changed) == nil {
					t.Fatalf("body changed at byte %d still verifies", int(at)%len(body))
				}
			}
			for _, name := range []string{HeaderWebhookSignature, HeaderWebhookTimestamp, HeaderWebhookID} {
				value := []byte(h.Get(name))
				i := int(at) % len(value)
				value[i] ^= flip
				tampered := h.Clone()
				tampered.Set(name, string(value))
				if verify(tampered, body) == nil {
					t.Fatalf("%s %q changed at byte %d to %q still verifies", name, h.Get(name), i, value)
				}
			}
		})
	})
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzVerifyStandardHeaders feeds the verifier arbitrary header values, as any client on the network can:
// it must answer with an error, never panic, and never accept a signature it did not compute.
func FuzzVerifyStandardHeaders(f *testing.F) {
	f.Add(readmeID, strconv.Itoa(readmeUnix), readmeSignature, []byte(readmeBody))
	f.Add(readmeID, "1614265330.5", "v1,Zm9v v2,whatever "+readmeSignature, []byte(readmeBody))
	f.Add("", "-9223372036854775808", "v1,", []byte{})
	f.Add("msg", "+1614265330", "v1,====", []byte("{}"))
	f.Add(readmeID, "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=", []byte(readmeBody))
	f.Fuzz(func(t *testing.T, id, timestamp, signature string, body []byte) {
		h := http.Header{}
		h.Set(HeaderWebhookID, id)
		h.Set(HeaderWebhookTimestamp, timestamp)
		h.Set(HeaderWebhookSignature, signature)
		err := VerifyStandard(fuzzStandardSecret, h, body, readmeTime, 5*time.Minute)
		if err != nil {
			return
		}
		// Accepted: the id, timestamp and body must be exactly what one of the v1 signatures signs.
		unix, perr := strconv.ParseInt(timestamp, 10, 64)
		if perr != nil {
			t.Fatalf("accepted unparsable timestamp %q", timestamp)
		}
		want, serr := SignStandard(fuzzStandardSecret, Message{ID: id, Timestamp: time.Unix(unix, 0), Body: body})
		if serr != nil {
			t.Fatalf("accepted what cannot be signed: %v", serr)
		}
		if !containsField(signature, want) {
			t.Fatalf("accepted signature header %q, which does not hold %q", signature, want)
		}
	})
}

// containsField reports whether want is one of the space-separated fields of list, as VerifyStandard splits it.
func containsField(list, want string) bool {
	for _, f := range bytes.Fields([]byte(list)) {
		if string(f) == want {
			return true
		}
	}
	return false
}
