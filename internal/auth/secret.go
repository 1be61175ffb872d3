package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// HashSecret returns the stored form of an inbound secret (source password, API key, client
// secret). The secrets Switchboard hands out carry 256 random bits, so a fast SHA-256 is as
// strong as a slow password hash here and keeps every hook request cheap.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CheckSecret reports, in constant time, whether secret matches a HashSecret result.
func CheckSecret(hash, secret string) bool {
	want := HashSecret(secret)
	return subtle.ConstantTimeCompare([]byte(hash), []byte(want)) == 1
}

// Equal compares two secrets in constant time (their lengths may leak, their contents do not).
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// HMACSHA256Hex returns the lowercase hex HMAC-SHA256 of body under key.
func HMACSHA256Hex(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Box seals and opens secrets at rest with AES-256-GCM. A sealed value is nonce || ciphertext.
type Box struct {
	aead cipher.AEAD
}

// NewBox returns a Box for a 32-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("auth: the encryption key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext with a fresh random nonce.
func (b *Box) Seal(plaintext string) []byte {
	nonce := domain.RandomBytes(b.aead.NonceSize())
	return b.aead.Seal(nonce, nonce, []byte(plaintext), nil)
}

// ErrOpen means a sealed value could not be decrypted: the encryption key changed or the row was altered.
var ErrOpen = errors.New("auth: cannot decrypt a stored secret (was SWITCHBOARD_ENCRYPTION_KEY changed?)")

// Open decrypts a value made by Seal.
func (b *Box) Open(sealed []byte) (string, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n {
		return "", ErrOpen
	}
	plain, err := b.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}
