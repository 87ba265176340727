package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrSignatureMismatch is wrapped by verification errors for a well-formed signature that does not
// match the body and secret.
var ErrSignatureMismatch = errors.New("signature does not match")

// SignHMACHex returns the lowercase hex HMAC-SHA256 of body under secret, which is what
// crypto.createHmac('sha256', secret).update(body).digest('hex') prints.
func SignHMACHex(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// VerifyHMACHex checks a hex HMAC-SHA256 signature of body in constant time. Upper-case hex is
// accepted, since it is the same signature.
func VerifyHMACHex(secret, body []byte, signature string) error {
	if signature == "" {
		return errors.New("signature is empty")
	}
	got, err := hex.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("signature is not hex: %w", err)
	}
	if len(got) != sha256.Size {
		return fmt.Errorf("signature is %d bytes, want %d for HMAC-SHA256", len(got), sha256.Size)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrSignatureMismatch
	}
	return nil
}
