package async

import "time"

// SetCallbackBackoff shortens the wait between callback tries in tests.
func SetCallbackBackoff(d time.Duration) { callbackBackoff = d }
