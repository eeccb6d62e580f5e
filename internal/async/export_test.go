package async

import (
	"testing"
	"time"
)

// SetCallbackBackoff shortens the wait between callback tries in tests.
func SetCallbackBackoff(t testing.TB, d time.Duration) {
	was := callbackBackoff
	callbackBackoff = d
	t.Cleanup(func() { callbackBackoff = was })
}
