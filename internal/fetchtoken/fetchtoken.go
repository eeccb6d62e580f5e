// Package fetchtoken makes and checks package fetch tokens: a credential
// that lets its holder read one package, named by its digest, from the
// nimbus API, and nothing else. A pod of the kube runtime is given the
// token of its function's package (never the admin token); every nimbus
// replica derives the same key from the admin token they share, so any
// of them checks a token another made.
package fetchtoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

const prefix = "nimbus-package."

// Key derives the signing key from the admin token.
func Key(adminToken string) []byte {
	m := hmac.New(sha256.New, []byte(adminToken))
	m.Write([]byte("nimbus package fetch tokens v1"))
	return m.Sum(nil)
}

// Token is the fetch token of the package digest.
func Token(key []byte, digest string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("package " + digest))
	return prefix + hex.EncodeToString(m.Sum(nil))
}

// Valid says whether token is the fetch token of digest; in constant time.
func Valid(key []byte, digest, token string) bool {
	if len(key) == 0 || !strings.HasPrefix(token, prefix) {
		return false
	}
	return hmac.Equal([]byte(token), []byte(Token(key, digest)))
}
