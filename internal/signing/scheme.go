package signing

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Scheme names how a webhook is signed.
type Scheme string

const (
	// SchemeHMACSHA256Hex puts the hex HMAC-SHA256 of the body in a configurable header, as product
	// documents 000 and 002 verify it.
	SchemeHMACSHA256Hex Scheme = "HMACSHA256Hex"
	// SchemeStandardWebhooks follows https://www.standardwebhooks.com: webhook-id, webhook-timestamp and
	// webhook-signature ("v1,<base64>").
	SchemeStandardWebhooks Scheme = "StandardWebhooks"
)

// DefaultHMACHeader carries the signature for SchemeHMACSHA256Hex when no header is configured.
const DefaultHMACHeader = "X-Webhook-Signature"

// Header names of the Standard Webhooks specification.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// Message is what is signed.
type Message struct {
	ID        string    // stable across retries (webhook-id); the event id
	Timestamp time.Time // per attempt (webhook-timestamp)
	Body      []byte
}

// Headers returns the headers that carry the signature for the scheme. secret is the secret string as
// the user stores it (see Key); taking the string rather than key bytes keeps decoding, and its
// errors, in one place. header is the header name for HMACSHA256Hex (empty means DefaultHMACHeader)
// and is ignored for StandardWebhooks, which returns webhook-id, webhook-timestamp and
// webhook-signature.
func Headers(scheme Scheme, header string, secret string, m Message) (http.Header, error) {
	switch scheme {
	case SchemeHMACSHA256Hex:
		if header == "" {
			header = DefaultHMACHeader
		}
		if !validHeaderName(header) {
			return nil, fmt.Errorf("signature header name %q is not a valid HTTP header name", header)
		}
		key, err := Key(scheme, secret)
		if err != nil {
			return nil, err
		}
		h := http.Header{}
		h.Set(header, SignHMACHex(key, m.Body))
		return h, nil

	case SchemeStandardWebhooks:
		signature, err := SignStandard(secret, m)
		if err != nil {
			return nil, err
		}
		h := http.Header{}
		h.Set(HeaderWebhookID, m.ID)
		h.Set(HeaderWebhookTimestamp, strconv.FormatInt(m.Timestamp.Unix(), 10))
		h.Set(HeaderWebhookSignature, signature)
		return h, nil
	}
	return nil, fmt.Errorf("unknown signing scheme %q", scheme)
}

// Signature is one signature a request carries: its scheme and, for SchemeHMACSHA256Hex, its header (empty
// means DefaultHMACHeader).
type Signature struct {
	Scheme Scheme
	Header string
}

// NextHeaderSuffix is appended to an HMACSHA256Hex header's name for the header that carries the current (new)
// key's signature during a rotation's overlap: X-Webhook-Signature-Next.
const NextHeaderSuffix = "-Next"

// Keys are the secrets a request is signed with: Current always, Previous during a rotation's overlap (empty
// otherwise).
type Keys struct {
	Current, Previous string
}

// HeadersAll returns the headers of every signature, all keyed with the one secret, for subscriptions that sign
// each request several ways (a receiver migrating between schemes verifies whichever it knows). It refuses two
// signatures that write the same header, since the second would silently replace the first.
//
// During a rotation's overlap (keys.Previous set) each HMACSHA256Hex header keeps the previous key, which
// receivers nobody touched still verify, and <header>-Next carries the current key's, which a receiver can switch
// to at any time of the overlap; webhook-signature carries both v1 signatures, the current key's first.
func HeadersAll(signatures []Signature, keys Keys, m Message) (http.Header, error) {
	if len(signatures) == 0 {
		return nil, errors.New("no signing scheme")
	}
	all := http.Header{}
	add := func(h http.Header) error {
		for k, vs := range h {
			if _, dup := all[k]; dup {
				return fmt.Errorf("two signatures write header %s; give each HMACSHA256Hex signature its own header", k)
			}
			all[k] = vs
		}
		return nil
	}
	for _, s := range signatures {
		h, err := Headers(s.Scheme, s.Header, keys.Current, m)
		if err != nil {
			return nil, err
		}
		if keys.Previous != "" {
			if h, err = withPrevious(s, h, keys.Previous, m); err != nil {
				return nil, fmt.Errorf("previous secret: %w", err)
			}
		}
		if err := add(h); err != nil {
			return nil, err
		}
	}
	return all, nil
}

// withPrevious adds the previous key's signature to h, the current key's headers of signature s.
func withPrevious(s Signature, h http.Header, previous string, m Message) (http.Header, error) {
	old, err := Headers(s.Scheme, s.Header, previous, m)
	if err != nil {
		return nil, err
	}
	if s.Scheme == SchemeStandardWebhooks {
		h.Set(HeaderWebhookSignature, h.Get(HeaderWebhookSignature)+" "+old.Get(HeaderWebhookSignature))
		return h, nil
	}
	// One header each: the primary moves to the old key, the new one goes to -Next.
	out := http.Header{}
	for k := range h {
		out.Set(k+NextHeaderSuffix, h.Get(k))
		out.Set(k, old.Get(k))
	}
	return out, nil
}

// Fingerprint identifies a secret without revealing it: the first 8 hex digits of its SHA-256. Status and the
// plugin show it so a person can tell which key is which.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:4])
}

// SecretScheme is the scheme whose form the one secret of signatures must have: StandardWebhooks when any
// signature uses it (its secret is whsec_<base64>, and HMACSHA256Hex accepts any string), else HMACSHA256Hex.
// Hookpost generates secrets of this scheme and checks supplied ones against it.
func SecretScheme(signatures []Signature) Scheme {
	for _, s := range signatures {
		if s.Scheme == SchemeStandardWebhooks {
			return SchemeStandardWebhooks
		}
	}
	return SchemeHMACSHA256Hex
}

// Lengths of Standard Webhooks keys the specification allows.
const (
	minStandardKeyBytes  = 24
	maxStandardKeyBytes  = 64
	standardSecretBytes  = 32
	hmacHexSecretBytes   = 32
	standardSecretPrefix = "whsec_"
)

// GenerateSecret returns a new random secret suitable for the scheme: for StandardWebhooks "whsec_"
// followed by the base64 of 32 random bytes, for HMACSHA256Hex a 64-character hex string. The hex
// string itself, not the bytes it spells, is the HMAC key, because doc 002's receiver passes the
// secret string straight to crypto.createHmac.
func GenerateSecret(scheme Scheme) (string, error) {
	var n int
	switch scheme {
	case SchemeStandardWebhooks:
		n = standardSecretBytes
	case SchemeHMACSHA256Hex:
		n = hmacHexSecretBytes
	default:
		return "", fmt.Errorf("unknown signing scheme %q", scheme)
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	if scheme == SchemeStandardWebhooks {
		return standardSecretPrefix + base64.StdEncoding.EncodeToString(b), nil
	}
	return hex.EncodeToString(b), nil
}

// Key returns the HMAC key bytes for a secret string under a scheme: for StandardWebhooks the
// base64-decoded part after "whsec_", for HMACSHA256Hex the string's own bytes. The error names what
// is wrong with the secret but never contains it.
func Key(scheme Scheme, secret string) ([]byte, error) {
	switch scheme {
	case SchemeHMACSHA256Hex:
		if secret == "" {
			return nil, errors.New("secret is empty")
		}
		return []byte(secret), nil

	case SchemeStandardWebhooks:
		encoded, ok := strings.CutPrefix(secret, standardSecretPrefix)
		if !ok {
			return nil, fmt.Errorf("standard webhooks secret does not start with %q", standardSecretPrefix)
		}
		key, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			// base64's error quotes a byte offset, not the secret, so it is safe to wrap.
			return nil, fmt.Errorf("standard webhooks secret after %q is not standard base64: %w", standardSecretPrefix, err)
		}
		if len(key) < minStandardKeyBytes || len(key) > maxStandardKeyBytes {
			return nil, fmt.Errorf("standard webhooks secret decodes to %d bytes, want %d to %d",
				len(key), minStandardKeyBytes, maxStandardKeyBytes)
		}
		return key, nil
	}
	return nil, fmt.Errorf("unknown signing scheme %q", scheme)
}

// validHeaderName reports whether name is an RFC 9110 token, which net/http would otherwise reject
// only when the request is sent.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
