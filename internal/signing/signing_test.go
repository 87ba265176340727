package signing

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// hexSecret is a secret as GenerateSecret makes it for SchemeHMACSHA256Hex.
	hexSecret = "8f3c2a7d9e1b4f6a0c5d8e2b7a9f1c3e6d4b8a2f0e7c9d1b5a3f6e8c2d4a7b9e"
	// readmeSecret and the values below are the test vector of the Standard Webhooks README.
	readmeSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	readmeID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	readmeUnix      = 1614265330
	readmeBody      = `{"test": 2432232314}`
	readmeSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

	doc000Body = `{"event":"user.registered","tenant_id":123,"timestamp":"2025-11-16T10:30:00Z","data":{"user_id":42,"name":"John Doe","email":"john@example.com","role":"MEMBER","invited_by":17}}`
	doc002Body = `{"event":"insert","collection":"posts","payload":{"_id":"64fd1234abcd5678ef901234","title":"Hello World","body":"Content here..."}}`
)

var readmeTime = time.Unix(readmeUnix, 0)

// The expected signatures below were computed once with node's crypto.createHmac and Python's hmac.
func TestSignHMACHexVectors(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		body   string
		want   string
	}{
		{"doc 000 body", hexSecret, doc000Body, "7faf7ab617fbdca5431beed093873a2213800466bbe99739ef92d348146ed900"},
		{"doc 002 body", hexSecret, doc002Body, "99c20ab4c64c6143dad920d021c482b3b0f84c8e0796b5c66f4384f4c144eb59"},
		{"empty key and body", "", "", "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"},
	}
	for _, tt := range tests {
		if got := SignHMACHex([]byte(tt.secret), []byte(tt.body)); got != tt.want {
			t.Errorf("%s: SignHMACHex = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestSignStandardVectors(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"standard webhooks README", Message{ID: readmeID, Timestamp: readmeTime, Body: []byte(readmeBody)}, readmeSignature},
		{"doc 000 body", Message{ID: "evt_1", Timestamp: time.Date(2025, 11, 16, 10, 30, 0, 999_000_000, time.UTC), Body: []byte(doc000Body)},
			"v1,B9nwxIY1pAputNMCQr5zlG7Lwt1+kODDNFlBq/joX0U="},
	}
	for _, tt := range tests {
		got, err := SignStandard(readmeSecret, tt.m)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s: SignStandard = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestHeaders(t *testing.T) {
	m := Message{ID: readmeID, Timestamp: readmeTime, Body: []byte(readmeBody)}
	tests := []struct {
		name   string
		scheme Scheme
		header string
		secret string
		want   http.Header
	}{
		{
			name: "hmac hex in the default header", scheme: SchemeHMACSHA256Hex, secret: hexSecret,
			want: http.Header{"X-Webhook-Signature": {SignHMACHex([]byte(hexSecret), m.Body)}},
		},
		{
			name: "hmac hex in doc 002's header", scheme: SchemeHMACSHA256Hex, header: "X-urBackend-Signature", secret: hexSecret,
			want: http.Header{"X-Urbackend-Signature": {SignHMACHex([]byte(hexSecret), m.Body)}},
		},
		{
			name: "standard webhooks ignores the header name", scheme: SchemeStandardWebhooks, header: "X-Ignored", secret: readmeSecret,
			want: http.Header{
				"Webhook-Id":        {readmeID},
				"Webhook-Timestamp": {"1614265330"},
				"Webhook-Signature": {readmeSignature},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Headers(tt.scheme, tt.header, tt.secret, m)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("headers\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestHeadersRejects(t *testing.T) {
	m := Message{ID: readmeID, Timestamp: readmeTime, Body: []byte(readmeBody)}
	tests := []struct {
		name    string
		scheme  Scheme
		header  string
		secret  string
		m       Message
		wantErr string
	}{
		{"unknown scheme", "RSA", "", hexSecret, m, `unknown signing scheme "RSA"`},
		{"header name with a space", SchemeHMACSHA256Hex, "X Signature", hexSecret, m, `"X Signature" is not a valid HTTP header name`},
		{"header name with a colon", SchemeHMACSHA256Hex, "X-Sig:", hexSecret, m, "is not a valid HTTP header name"},
		{"empty hmac secret", SchemeHMACSHA256Hex, "", "", m, "secret is empty"},
		{"standard secret without prefix", SchemeStandardWebhooks, "", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", m, `does not start with "whsec_"`},
		{"standard message without id", SchemeStandardWebhooks, "", readmeSecret, Message{Timestamp: readmeTime}, "message id is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Headers(tt.scheme, tt.header, tt.secret, tt.m)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestHeadersAll(t *testing.T) {
	m := Message{ID: readmeID, Timestamp: readmeTime, Body: []byte(readmeBody)}
	// One whsec_ secret keys both schemes: Standard Webhooks its decoded bytes, hex HMAC the string itself.
	hexOfString := SignHMACHex([]byte(readmeSecret), m.Body)
	// A rotation from previous to readmeSecret: whsec_ + base64 of 24 bytes, like the README's.
	const previous = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"
	previousStandard, err := SignStandard(previous, m)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		signatures []Signature
		// keys default to readmeSecret alone.
		keys    Keys
		want    http.Header
		wantErr string
	}{
		{
			name:       "hex HMAC and Standard Webhooks",
			signatures: []Signature{{Scheme: SchemeHMACSHA256Hex}, {Scheme: SchemeStandardWebhooks}},
			want: http.Header{
				"X-Webhook-Signature": {hexOfString},
				"Webhook-Id":          {readmeID},
				"Webhook-Timestamp":   {"1614265330"},
				"Webhook-Signature":   {readmeSignature},
			},
		},
		{
			name:       "two hex HMAC headers",
			signatures: []Signature{{Scheme: SchemeHMACSHA256Hex, Header: "X-urBackend-Signature"}, {Scheme: SchemeHMACSHA256Hex}},
			want:       http.Header{"X-Urbackend-Signature": {hexOfString}, "X-Webhook-Signature": {hexOfString}},
		},
		{
			name:       "two signatures in one header, spelt differently",
			signatures: []Signature{{Scheme: SchemeHMACSHA256Hex}, {Scheme: SchemeHMACSHA256Hex, Header: "x-webhook-signature"}},
			wantErr:    "two signatures write header X-Webhook-Signature",
		},
		{
			name:       "a hex HMAC header that Standard Webhooks writes",
			signatures: []Signature{{Scheme: SchemeStandardWebhooks}, {Scheme: SchemeHMACSHA256Hex, Header: "Webhook-Signature"}},
			wantErr:    "two signatures write header Webhook-Signature",
		},
		{
			name:       "rotation: the hex header stays on the previous key, -Next carries the current one",
			signatures: []Signature{{Scheme: SchemeHMACSHA256Hex}, {Scheme: SchemeHMACSHA256Hex, Header: "X-urBackend-Signature"}},
			keys:       Keys{Current: readmeSecret, Previous: previous},
			want: http.Header{
				"X-Urbackend-Signature":      {SignHMACHex([]byte(previous), m.Body)},
				"X-Urbackend-Signature-Next": {hexOfString},
				"X-Webhook-Signature":        {SignHMACHex([]byte(previous), m.Body)},
				"X-Webhook-Signature-Next":   {hexOfString},
			},
		},
		{
			name:       "rotation: webhook-signature carries both keys' signatures, the current one first",
			signatures: []Signature{{Scheme: SchemeStandardWebhooks}},
			keys:       Keys{Current: readmeSecret, Previous: previous},
			want: http.Header{
				"Webhook-Id":        {readmeID},
				"Webhook-Timestamp": {"1614265330"},
				"Webhook-Signature": {readmeSignature + " " + previousStandard},
			},
		},
		{
			name:       "rotation: a -Next header that another signature writes",
			signatures: []Signature{{Scheme: SchemeHMACSHA256Hex}, {Scheme: SchemeHMACSHA256Hex, Header: "X-Webhook-Signature-Next"}},
			keys:       Keys{Current: readmeSecret, Previous: previous},
			wantErr:    "two signatures write header X-Webhook-Signature-Next",
		},
		{
			name:       "rotation: a previous key Standard Webhooks cannot use",
			signatures: []Signature{{Scheme: SchemeStandardWebhooks}},
			keys:       Keys{Current: readmeSecret, Previous: "5d41402abc4b2a76"},
			wantErr:    "previous secret: standard webhooks secret does not start with",
		},
		{name: "none", wantErr: "no signing scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := tt.keys
			if keys == (Keys{}) {
				keys.Current = readmeSecret
			}
			got, err := HeadersAll(tt.signatures, keys, m)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("headers\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestSecretScheme(t *testing.T) {
	tests := []struct {
		name       string
		signatures []Signature
		want       Scheme
	}{
		{name: "hex HMAC only", signatures: []Signature{{Scheme: SchemeHMACSHA256Hex}, {Scheme: SchemeHMACSHA256Hex, Header: "X-B"}}, want: SchemeHMACSHA256Hex},
		{name: "Standard Webhooks only", signatures: []Signature{{Scheme: SchemeStandardWebhooks}}, want: SchemeStandardWebhooks},
		{name: "Standard Webhooks among others", signatures: []Signature{{Scheme: SchemeHMACSHA256Hex}, {Scheme: SchemeStandardWebhooks}}, want: SchemeStandardWebhooks},
		{name: "unset scheme (an object the API server has not defaulted)", signatures: []Signature{{}}, want: SchemeHMACSHA256Hex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SecretScheme(tt.signatures); got != tt.want {
				t.Errorf("SecretScheme = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestVerifyHMACHex(t *testing.T) {
	key, body := []byte(hexSecret), []byte(doc000Body)
	signature := SignHMACHex(key, body)
	if err := VerifyHMACHex(key, body, signature); err != nil {
		t.Fatalf("own signature rejected: %v", err)
	}
	if err := VerifyHMACHex(key, body, strings.ToUpper(signature)); err != nil {
		t.Errorf("upper-case hex rejected: %v", err)
	}

	tampered := []byte(strings.Replace(doc000Body, `"user_id":42`, `"user_id":43`, 1))
	tests := []struct {
		name      string
		key, body []byte
		signature string
		wantIs    error
		wantErr   string
	}{
		{"tampered body", key, tampered, signature, ErrSignatureMismatch, "signature does not match"},
		{"wrong secret", []byte("another-secret"), body, signature, ErrSignatureMismatch, "signature does not match"},
		{"not hex", key, body, "zz" + signature[2:], nil, "signature is not hex"},
		{"truncated", key, body, signature[:32], nil, "signature is 16 bytes, want 32"},
		{"empty", key, body, "", nil, "signature is empty"},
	}
	for _, tt := range tests {
		err := VerifyHMACHex(tt.key, tt.body, tt.signature)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want it to contain %q", tt.name, err, tt.wantErr)
		}
		if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
			t.Errorf("%s: error %v does not wrap %v", tt.name, err, tt.wantIs)
		}
	}
}

func TestVerifyStandard(t *testing.T) {
	body := []byte(readmeBody)
	valid := func() http.Header {
		return http.Header{
			"Webhook-Id":        {readmeID},
			"Webhook-Timestamp": {strconv.Itoa(readmeUnix)},
			"Webhook-Signature": {readmeSignature},
		}
	}
	const tolerance = 5 * time.Minute

	if err := VerifyStandard(readmeSecret, valid(), body, readmeTime.Add(4*time.Minute), tolerance); err != nil {
		t.Fatalf("README vector rejected: %v", err)
	}

	otherSecret, err := GenerateSecret(SchemeStandardWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		secret  string
		mutate  func(http.Header)
		body    string
		now     time.Time
		wantIs  error
		wantErr string
	}{
		{name: "rotation: one of several signatures matches", mutate: func(h http.Header) {
			h.Set("Webhook-Signature", "v1,Zm9v v2,whatever "+readmeSignature+" v1a,x")
		}},
		{name: "tampered body", body: `{"test": 2432232315}`, wantIs: ErrSignatureMismatch, wantErr: "no v1 signature in webhook-signature matched"},
		{name: "wrong secret", secret: otherSecret, wantIs: ErrSignatureMismatch, wantErr: "no v1 signature in webhook-signature matched"},
		{name: "tampered id", mutate: func(h http.Header) { h.Set("Webhook-Id", "msg_other") }, wantIs: ErrSignatureMismatch},
		{name: "timestamp moved within tolerance", mutate: func(h http.Header) { h.Set("Webhook-Timestamp", strconv.Itoa(readmeUnix+1)) }, wantIs: ErrSignatureMismatch},
		{name: "stale timestamp", now: readmeTime.Add(5*time.Minute + time.Second), wantIs: ErrTimestampOutOfTolerance,
			wantErr: "timestamp outside tolerance: webhook-timestamp is 301s from now, tolerance is 5m0s"},
		{name: "timestamp from the future", now: readmeTime.Add(-6 * time.Minute), wantIs: ErrTimestampOutOfTolerance, wantErr: "is -360s from now"},
		{name: "missing id", mutate: func(h http.Header) { h.Del("Webhook-Id") }, wantIs: ErrMissingHeader, wantErr: "missing header webhook-id"},
		{name: "missing timestamp", mutate: func(h http.Header) { h.Del("Webhook-Timestamp") }, wantIs: ErrMissingHeader, wantErr: "missing header webhook-timestamp"},
		{name: "missing signature", mutate: func(h http.Header) { h.Del("Webhook-Signature") }, wantIs: ErrMissingHeader, wantErr: "missing header webhook-signature"},
		{name: "timestamp in milliseconds", mutate: func(h http.Header) { h.Set("Webhook-Timestamp", "1614265330.5") }, wantIs: ErrInvalidHeader,
			wantErr: `invalid header webhook-timestamp: "1614265330.5" is not unix seconds`},
		{name: "absurd timestamp does not overflow", mutate: func(h http.Header) { h.Set("Webhook-Timestamp", "-9223372036854775808") }, wantIs: ErrTimestampOutOfTolerance},
		{name: "unused bits of the last base64 character set", mutate: func(h http.Header) {
			h.Set("Webhook-Signature", strings.Replace(readmeSignature, "1OE=", "1OF=", 1))
		}, wantIs: ErrSignatureMismatch},
		{name: "no v1 signature", mutate: func(h http.Header) { h.Set("Webhook-Signature", "v2,abc") }, wantIs: ErrInvalidHeader, wantErr: "invalid header webhook-signature: no v1 signature"},
		{name: "bad secret", secret: "whsec_!!!", wantErr: "is not standard base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := valid()
			if tt.mutate != nil {
				tt.mutate(h)
			}
			secret, b, now := readmeSecret, body, readmeTime
			if tt.secret != "" {
				secret = tt.secret
			}
			if tt.body != "" {
				b = []byte(tt.body)
			}
			if !tt.now.IsZero() {
				now = tt.now
			}
			err := VerifyStandard(secret, h, b, now, tolerance)
			if tt.wantIs == nil && tt.wantErr == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted, want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestSignAndVerifyRoundTrip(t *testing.T) {
	for _, scheme := range []Scheme{SchemeHMACSHA256Hex, SchemeStandardWebhooks} {
		secret, err := GenerateSecret(scheme)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2025, 11, 16, 10, 30, 0, 0, time.UTC)
		m := Message{ID: "evt_1", Timestamp: now, Body: []byte(doc002Body)}
		h, err := Headers(scheme, "", secret, m)
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		switch scheme {
		case SchemeHMACSHA256Hex:
			err = VerifyHMACHex([]byte(secret), m.Body, h.Get(DefaultHMACHeader))
		case SchemeStandardWebhooks:
			err = VerifyStandard(secret, h, m.Body, now.Add(time.Minute), 5*time.Minute)
		}
		if err != nil {
			t.Errorf("%s: own headers rejected: %v", scheme, err)
		}
	}
}

func TestGenerateSecret(t *testing.T) {
	hexSecret1, err := GenerateSecret(SchemeHMACSHA256Hex)
	if err != nil {
		t.Fatal(err)
	}
	if len(hexSecret1) != 64 || strings.Trim(hexSecret1, "0123456789abcdef") != "" {
		t.Errorf("hmac hex secret %q is not 64 lowercase hex characters", hexSecret1)
	}

	standard, err := GenerateSecret(SchemeStandardWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	key, err := Key(SchemeStandardWebhooks, standard)
	if err != nil {
		t.Fatalf("Key rejects a generated secret: %v", err)
	}
	if len(key) != 32 {
		t.Errorf("standard webhooks key is %d bytes, want 32", len(key))
	}

	again, _ := GenerateSecret(SchemeStandardWebhooks)
	if again == standard {
		t.Error("two generated secrets are equal")
	}
	if _, err := GenerateSecret("RSA"); err == nil || !strings.Contains(err.Error(), `unknown signing scheme "RSA"`) {
		t.Errorf("unknown scheme: error %v", err)
	}
}

func TestKey(t *testing.T) {
	key, err := Key(SchemeHMACSHA256Hex, hexSecret)
	if err != nil || string(key) != hexSecret {
		t.Errorf("hmac hex key is %q, %v; want the secret string's own bytes", key, err)
	}
	key, err = Key(SchemeStandardWebhooks, readmeSecret)
	if want, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err != nil || string(key) != string(want) {
		t.Errorf("standard key is %x, %v; want %x", key, err, want)
	}

	tests := []struct {
		scheme  Scheme
		secret  string
		wantErr string
	}{
		{SchemeHMACSHA256Hex, "", "secret is empty"},
		{SchemeStandardWebhooks, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `does not start with "whsec_"`},
		{SchemeStandardWebhooks, "whsec_MfKQ9r8G*YqrTwjUPD8ILPZIo2LaLaSw", `secret after "whsec_" is not standard base64`},
		{SchemeStandardWebhooks, "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)), "decodes to 16 bytes, want 24 to 64"},
		{SchemeStandardWebhooks, "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), "decodes to 65 bytes, want 24 to 64"},
		{"RSA", "x", `unknown signing scheme "RSA"`},
	}
	for _, tt := range tests {
		_, err := Key(tt.scheme, tt.secret)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Key(%s, %q): error %v, want it to contain %q", tt.scheme, tt.secret, err, tt.wantErr)
		}
		if err != nil && tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
			t.Errorf("Key(%s): error %q leaks the secret", tt.scheme, err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	standardSecret, err := GenerateSecret(SchemeStandardWebhooks)
	if err != nil {
		b.Fatal(err)
	}
	secrets := map[Scheme]string{SchemeHMACSHA256Hex: hexSecret, SchemeStandardWebhooks: standardSecret}
	for _, scheme := range []Scheme{SchemeHMACSHA256Hex, SchemeStandardWebhooks} {
		for _, size := range []int{1 << 10, 16 << 10} {
			m := Message{ID: "evt_2f1c9a", Timestamp: readmeTime, Body: []byte(strings.Repeat("x", size))}
			b.Run(fmt.Sprintf("%s/%dKB", scheme, size>>10), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := Headers(scheme, "", secrets[scheme], m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func TestSealBindsEveryFieldAndItsBoundaries(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	fields := [][]byte{[]byte("shop"), []byte("orders-abc"), []byte("order.paid")}
	seal := Seal(key, fields...)
	if !VerifySeal(key, seal, fields...) {
		t.Fatal("a seal does not verify its own fields")
	}
	for name, tc := range map[string]struct {
		key    []byte
		seal   string
		fields [][]byte
	}{
		"another key":           {[]byte("another key"), seal, fields},
		"no key":                {nil, seal, fields},
		"a changed field":       {key, seal, [][]byte{[]byte("shop"), []byte("orders-abc"), []byte("order.refunded")}},
		"a moved boundary":      {key, seal, [][]byte{[]byte("shopo"), []byte("rders-abc"), []byte("order.paid")}},
		"a field fewer":         {key, seal, fields[:2]},
		"not hex":               {key, "zz" + seal[2:], fields},
		"empty":                 {key, "", fields},
		"a seal of another key": {key, Seal([]byte("another key"), fields...), fields},
	} {
		if VerifySeal(tc.key, tc.seal, tc.fields...) {
			t.Errorf("%s: verified", name)
		}
	}
}
