package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookpost/hookpost/internal/signing"
)

// body is canonical: JSON.stringify(JSON.parse(body)) == body, as every body Hookpost sends.
const verifyBody = `{"event":"order.created","tenant_id":123,"timestamp":"2025-11-16T10:30:00Z","data":{"order_id":1001,"total":299.99}}`

func writeBody(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyHMACSHA256Hex(t *testing.T) {
	const secret = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	sig := signing.SignHMACHex([]byte(secret), []byte(verifyBody))
	pretty := strings.NewReplacer(`{"`, "{\n  \"", `,"`, ",\n  \"", `":`, `": `).Replace(verifyBody)

	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		want     []string
	}{
		{"valid", []string{"--body", writeBody(t, verifyBody), "--header", "X-Webhook-Signature: " + sig}, "", 0,
			[]string{"VALID"}},
		{"valid from stdin under a custom header", []string{"--body", "-", "--header", "X-urBackend-Signature: " + sig, "--signature-header", "X-urBackend-Signature"}, verifyBody, 0,
			[]string{"VALID"}},
		{"tampered body", []string{"--body", writeBody(t, strings.Replace(verifyBody, "299.99", "0.01", 1)), "--header", "X-Webhook-Signature: " + sig}, "", 1,
			[]string{"INVALID: the signature does not match", "secret is wrong"}},
		{"re-serialised body", []string{"--body", writeBody(t, pretty), "--header", "X-Webhook-Signature: " + sig}, "", 1,
			[]string{"INVALID: body not canonical", "JSON.stringify(JSON.parse(body)) differs from the body", "express.raw()"}},
		{"wrong secret", []string{"--body", writeBody(t, verifyBody), "--header", "X-Webhook-Signature: " + signing.SignHMACHex([]byte("other"), []byte(verifyBody))}, "", 1,
			[]string{"INVALID: the signature does not match: the secret is wrong"}},
		{"missing header", []string{"--body", writeBody(t, verifyBody)}, "", 1,
			[]string{"INVALID: missing header X-Webhook-Signature"}},
		{"prefixed signature", []string{"--body", writeBody(t, verifyBody), "--header", "X-Webhook-Signature: sha256=" + sig}, "", 1,
			[]string{"INVALID: header X-Webhook-Signature is not an HMACSHA256Hex signature"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.stdin, append([]string{"verify", "--secret", secret}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d", r.code, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

func TestVerifyStandardWebhooks(t *testing.T) {
	secret, err := signing.GenerateSecret(signing.SchemeStandardWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	headers := func(body string, at time.Time) []string {
		s, err := signing.SignStandard(secret, signing.Message{ID: "evt-1", Timestamp: at, Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		return []string{"--header", "webhook-id: evt-1", "--header", "webhook-timestamp: " + strconv.FormatInt(at.Unix(), 10), "--header", "webhook-signature: " + s}
	}
	now := time.Now()
	tests := []struct {
		name     string
		body     string
		headers  []string
		wantCode int
		want     []string
	}{
		{"valid", verifyBody, headers(verifyBody, now), 0, []string{"VALID"}},
		{"tampered body", strings.Replace(verifyBody, "1001", "1002", 1), headers(verifyBody, now), 1,
			[]string{"INVALID: the signature does not match"}},
		{"stale timestamp", verifyBody, headers(verifyBody, now.Add(-2*time.Hour)), 1,
			[]string{"INVALID: stale timestamp", "The signature itself matches"}},
		{"stale and tampered", "{}", headers(verifyBody, now.Add(-2*time.Hour)), 1,
			[]string{"INVALID: stale timestamp", "Besides, the signature does not match"}},
		{"missing webhook-id", verifyBody, headers(verifyBody, now)[2:], 1,
			[]string{"INVALID: missing header webhook-id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"verify", "--scheme", "StandardWebhooks", "--secret", secret, "--body", writeBody(t, tt.body)}, tt.headers...)
			r := run(t, "", args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d", r.code, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}

	r := run(t, "", "verify", "--scheme", "StandardWebhooks", "--secret", "plain-hex-secret", "--body", writeBody(t, verifyBody))
	if r.code != 1 || !strings.Contains(r.stdout, "whsec_") {
		t.Errorf("a non-whsec_ secret: exit %d:\n%s", r.code, r.stdout)
	}
}
