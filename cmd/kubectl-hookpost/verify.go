package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookpost/hookpost/internal/envelope"
	"github.com/hookpost/hookpost/internal/signing"
)

type verifyOptions struct {
	*rootOptions
	secret, scheme, bodyFile, signatureHeader string
	headers                                   []string
	tolerance                                 time.Duration
}

func newVerifyCommand(root *rootOptions) *cobra.Command {
	o := &verifyOptions{rootOptions: root}
	cmd := &cobra.Command{
		Use:   "verify --secret SECRET --body FILE --header 'Name: value'...",
		Short: "Check a webhook signature as a receiver would, and say why it fails",
		Long: `Verifies the signature of a request a receiver got, from its raw body and headers, and when it is not
valid says why: a missing header, a malformed signature, a stale Standard Webhooks timestamp, a body that is
not the bytes that were signed (for example re-serialised: JSON.stringify(JSON.parse(body)) differs from it),
or a wrong secret. It needs no cluster. Exit code 0 when the signature is valid, 1 when not.`,
		Example: `  kubectl hookpost verify --secret "$(kubectl hookpost secret orders)" --body body.json \
      --header 'X-Webhook-Signature: 5d41402abc4b2a76b9719d911017c592...'
  kubectl hookpost verify --scheme StandardWebhooks --secret whsec_... --body body.json \
      --header 'webhook-id: 0b5e...' --header 'webhook-timestamp: 1763289000' --header 'webhook-signature: v1,K5oZ...'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run() },
	}
	f := cmd.Flags()
	f.StringVar(&o.secret, "secret", "", "The signing secret (required).")
	f.StringVar(&o.scheme, "scheme", string(signing.SchemeHMACSHA256Hex), "Signing scheme: HMACSHA256Hex or StandardWebhooks.")
	f.StringVar(&o.bodyFile, "body", "", "File holding the raw request body, byte for byte; - reads standard input (required).")
	f.StringArrayVar(&o.headers, "header", nil, "A request header as 'Name: value' (repeatable).")
	f.StringVar(&o.signatureHeader, "signature-header", signing.DefaultHMACHeader, "Header carrying the HMACSHA256Hex signature.")
	f.DurationVar(&o.tolerance, "tolerance", 5*time.Minute, "How far webhook-timestamp may be from now (StandardWebhooks).")
	_ = cmd.MarkFlagRequired("secret")
	_ = cmd.MarkFlagRequired("body")
	return cmd
}

func (o *verifyOptions) run() error {
	body, err := o.readBody()
	if err != nil {
		return err
	}
	h, err := parseHeaders(o.headers)
	if err != nil {
		return err
	}
	var v verdict
	switch signing.Scheme(o.scheme) {
	case signing.SchemeHMACSHA256Hex:
		v = verifyHMAC(o.secret, o.signatureHeader, h, body)
	case signing.SchemeStandardWebhooks:
		v = verifyStandard(o.secret, h, body, time.Now(), o.tolerance)
	default:
		return fmt.Errorf("--scheme %q is not a scheme: use HMACSHA256Hex or StandardWebhooks", o.scheme)
	}
	if v.valid {
		fmt.Fprintln(o.streams.Out, "VALID: "+v.reason)
	} else {
		fmt.Fprintln(o.streams.Out, "INVALID: "+v.reason)
	}
	for _, n := range v.notes {
		fmt.Fprintln(o.streams.Out, n)
	}
	if !v.valid {
		return exitError{code: 1}
	}
	return nil
}

func (o *verifyOptions) readBody() ([]byte, error) {
	if o.bodyFile == "-" {
		b, err := io.ReadAll(o.streams.In)
		if err != nil {
			return nil, fmt.Errorf("read the body from standard input: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(o.bodyFile)
	if err != nil {
		return nil, fmt.Errorf("read the body: %w", err)
	}
	return b, nil
}

func parseHeaders(lines []string) (http.Header, error) {
	h := http.Header{}
	for _, l := range lines {
		name, value, ok := strings.Cut(l, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("--header %q is not of the form 'Name: value'", l)
		}
		h.Add(name, strings.TrimSpace(value))
	}
	return h, nil
}

// verdict is verify's answer: valid or not, the main reason, and notes that help fix it.
type verdict struct {
	valid  bool
	reason string
	notes  []string
}

func invalid(reason string, notes ...string) verdict { return verdict{reason: reason, notes: notes} }

func verifyHMAC(secret, header string, h http.Header, body []byte) verdict {
	key, err := signing.Key(signing.SchemeHMACSHA256Hex, secret)
	if err != nil {
		return invalid("the secret is unusable: " + err.Error())
	}
	sig := h.Get(header)
	if sig == "" {
		v := invalid(fmt.Sprintf("missing header %s: the signature travels in it (pass it with --header '%s: <signature>', or name another header with --signature-header)", header, header))
		if h.Get(signing.HeaderWebhookSignature) != "" {
			v.notes = append(v.notes, "The request carries webhook-signature: it is signed with --scheme StandardWebhooks.")
		}
		return v
	}
	err = signing.VerifyHMACHex(key, body, sig)
	if err == nil {
		return valid("the "+header+" signature is the HMAC-SHA256 of the body under the secret", body)
	}
	if !errors.Is(err, signing.ErrSignatureMismatch) {
		return invalid(fmt.Sprintf("header %s is not an HMACSHA256Hex signature: %v; it must be 64 hex characters, with no prefix such as sha256=", header, err))
	}
	return mismatch(body, func(b []byte) bool { return signing.VerifyHMACHex(key, b, sig) == nil },
		strings.HasPrefix(secret, "whsec_"))
}

func verifyStandard(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) verdict {
	if _, err := signing.Key(signing.SchemeStandardWebhooks, secret); err != nil {
		return invalid("the secret is unusable for StandardWebhooks: " + err.Error() + " (StandardWebhooks secrets look like whsec_<base64>)")
	}
	err := signing.VerifyStandard(secret, h, body, now, tolerance)
	switch {
	case err == nil:
		return valid("webhook-signature is the Standard Webhooks signature of webhook-id, webhook-timestamp and the body under the secret", body)
	case errors.Is(err, signing.ErrMissingHeader):
		return invalid(err.Error() + ": Standard Webhooks signs webhook-id, webhook-timestamp and the body; pass each with --header")
	case errors.Is(err, signing.ErrInvalidHeader):
		return invalid(err.Error())
	case errors.Is(err, signing.ErrTimestampOutOfTolerance):
		unix, _ := strconv.ParseInt(h.Get(signing.HeaderWebhookTimestamp), 10, 64)
		at := time.Unix(unix, 0).UTC()
		reason := fmt.Sprintf("stale timestamp: webhook-timestamp is %s (%s from now), outside the %s tolerance that keeps captured requests from being replayed",
			at.Format(time.RFC3339), now.Sub(at).Round(time.Second), tolerance)
		// Say whether the timestamp is the only problem.
		if signing.VerifyStandard(secret, h, body, at, tolerance) == nil {
			return invalid(reason, "The signature itself matches: the request is authentic but old. Verify requests when they arrive, check the receiver's clock, or widen --tolerance to check an old capture.")
		}
		m := mismatch(body, func(b []byte) bool { return signing.VerifyStandard(secret, h, b, at, tolerance) == nil }, false)
		return invalid(reason, append([]string{"Besides, the signature does not match either: " + m.reason}, m.notes...)...)
	case errors.Is(err, signing.ErrSignatureMismatch):
		return mismatch(body, func(b []byte) bool { return signing.VerifyStandard(secret, h, b, now, tolerance) == nil }, false)
	}
	return invalid(err.Error())
}

// valid is a valid verdict, warning when the body is not canonical JSON: a receiver that verifies
// JSON.stringify(req.body), as the product docs' examples do, would then compute a different signature.
func valid(reason string, body []byte) verdict {
	v := verdict{valid: true, reason: reason}
	if canonical, err := envelope.Canonical(body); err == nil && !bytes.Equal(canonical, body) {
		v.notes = append(v.notes, "Warning: verify the raw body bytes. A receiver that signs JSON.stringify(req.body) instead would fail, because "+
			difference(body, canonical))
	}
	return v
}

// mismatch explains a signature that does not match body: re-serialised JSON, or a wrong secret or changed body.
func mismatch(body []byte, matches func([]byte) bool, secretLooksStandard bool) verdict {
	canonical, err := envelope.Canonical(body)
	switch {
	case err != nil:
		return invalid("the signature does not match, and the body is not JSON ("+err.Error()+")",
			"Hookpost sends JSON: pass the raw request body as received, byte for byte.")
	case !bytes.Equal(canonical, body) && matches(canonical):
		return invalid("body not canonical: the signature matches JSON.stringify(JSON.parse(body)) but not the body as given",
			"Hookpost signs exactly the bytes it sends; this body was re-serialised or re-formatted after it was received: "+difference(body, canonical),
			"Verify the raw request body (for example express.raw() instead of express.json()).")
	case !bytes.Equal(canonical, body):
		return invalid("the signature does not match the body",
			"The body is not canonical either, so it is not the bytes Hookpost sent: "+difference(body, canonical),
			"Pass the raw request body, byte for byte. If it is, the secret is wrong: compare it with `kubectl hookpost secret SUBSCRIPTION`.")
	}
	v := invalid("the signature does not match: the secret is wrong, or the body is not the one that was signed",
		"Check the secret with `kubectl hookpost secret SUBSCRIPTION`, and that the body is exactly what the request carried.")
	if secretLooksStandard {
		v.notes = append(v.notes, "The secret has the whsec_ form of Standard Webhooks: if the subscription signs with StandardWebhooks, pass --scheme StandardWebhooks and its webhook-* headers.")
	}
	return v
}

// difference shows where JSON.stringify(JSON.parse(body)) first differs from body.
func difference(body, canonical []byte) string {
	i := 0
	for i < len(body) && i < len(canonical) && body[i] == canonical[i] {
		i++
	}
	return fmt.Sprintf("JSON.stringify(JSON.parse(body)) differs from the body from byte %d (the body has %d bytes, JSON.stringify %d):\n  body:           %s\n  JSON.stringify: %s",
		i, len(body), len(canonical), excerpt(body, i), excerpt(canonical, i))
}

func excerpt(b []byte, at int) string {
	start, end := max(at-20, 0), min(at+40, len(b))
	s := strconv.Quote(string(b[start:end]))
	if start > 0 {
		s = "..." + s
	}
	if end < len(b) {
		s += "..."
	}
	return s
}
