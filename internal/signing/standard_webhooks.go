package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrMissingHeader is wrapped when a Standard Webhooks header is absent.
	ErrMissingHeader = errors.New("missing header")
	// ErrInvalidHeader is wrapped when a Standard Webhooks header cannot be parsed.
	ErrInvalidHeader = errors.New("invalid header")
	// ErrTimestampOutOfTolerance is wrapped when webhook-timestamp is too far from now, which is how
	// Standard Webhooks defeats replaying a captured request.
	ErrTimestampOutOfTolerance = errors.New("timestamp outside tolerance")
)

// SignStandard returns the Standard Webhooks signature "v1,<base64>" of m under secret
// ("whsec_<base64>"): HMAC-SHA256 of "{id}.{unix seconds}.{body}".
func SignStandard(secret string, m Message) (string, error) {
	if m.ID == "" {
		return "", errors.New("message id is empty")
	}
	key, err := Key(SchemeStandardWebhooks, secret)
	if err != nil {
		return "", err
	}
	return "v1," + base64.StdEncoding.EncodeToString(standardMAC(key, m.ID, m.Timestamp.Unix(), m.Body)), nil
}

func standardMAC(key []byte, id string, unix int64, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	var prefix []byte
	prefix = append(prefix, id...)
	prefix = append(prefix, '.')
	prefix = strconv.AppendInt(prefix, unix, 10)
	prefix = append(prefix, '.')
	mac.Write(prefix)
	mac.Write(body)
	return mac.Sum(nil)
}

// VerifyStandard checks the webhook-id, webhook-timestamp and webhook-signature headers against body.
// The signature header may hold several space-separated signatures (as during secret rotation); one
// matching v1 signature suffices and signatures of other versions are ignored. The timestamp must be
// within tolerance of now in either direction (the specification suggests 5 minutes).
func VerifyStandard(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := Key(SchemeStandardWebhooks, secret)
	if err != nil {
		return err
	}
	id := h.Get(HeaderWebhookID)
	if id == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderWebhookID)
	}
	rawTimestamp := h.Get(HeaderWebhookTimestamp)
	if rawTimestamp == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderWebhookTimestamp)
	}
	signatures := h.Get(HeaderWebhookSignature)
	if signatures == "" {
		return fmt.Errorf("%w %s", ErrMissingHeader, HeaderWebhookSignature)
	}
	unix, err := strconv.ParseInt(rawTimestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w %s: %q is not unix seconds", ErrInvalidHeader, HeaderWebhookTimestamp, rawTimestamp)
	}
	// Compare in seconds so that an absurd timestamp cannot overflow a time.Duration.
	if age := now.Unix() - unix; age > int64(tolerance/time.Second) || -age > int64(tolerance/time.Second) {
		return fmt.Errorf("%w: %s is %ds from now, tolerance is %s",
			ErrTimestampOutOfTolerance, HeaderWebhookTimestamp, age, tolerance)
	}

	want := standardMAC(key, id, unix, body)
	seenV1 := false
	for _, versioned := range strings.Fields(signatures) {
		version, encoded, ok := strings.Cut(versioned, ",")
		if !ok || version != "v1" {
			continue
		}
		seenV1 = true
		// Strict: the lenient decoder ignores the unused low bits of the last character, so "...1OF=" would
		// pass for "...1OE=" and a signature would have four spellings a receiver's check could disagree on.
		got, err := base64.StdEncoding.Strict().DecodeString(encoded)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	if !seenV1 {
		return fmt.Errorf("%w %s: no v1 signature", ErrInvalidHeader, HeaderWebhookSignature)
	}
	return fmt.Errorf("%w: no v1 signature in %s matched", ErrSignatureMismatch, HeaderWebhookSignature)
}
