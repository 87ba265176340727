package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// Seal returns the hex HMAC-SHA256 under key of fields. Each field is length-prefixed, so no two different field
// lists (moving bytes from one field to the next) share a seal.
func Seal(key []byte, fields ...[]byte) string {
	mac := hmac.New(sha256.New, key)
	var n [8]byte
	for _, f := range fields {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		mac.Write(n[:])
		mac.Write(f)
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// VerifySeal reports, in constant time, whether seal is Seal(key, fields...). An empty key verifies nothing.
func VerifySeal(key []byte, seal string, fields ...[]byte) bool {
	if len(key) == 0 {
		return false
	}
	got, err := hex.DecodeString(seal)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	want, _ := hex.DecodeString(Seal(key, fields...))
	return hmac.Equal(got, want)
}
