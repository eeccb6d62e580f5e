package async

import (
	"math"
	"time"
)

// maxBackoff caps one retry's delay.
const maxBackoff = 10 * time.Minute

// Backoff is the delay before retry number attempt (1 for the first retry):
// base × 2^(attempt-1), times a jitter factor in [0.5, 1.5) that the caller
// draws (so the function stays pure and testable), at most 10 minutes.
func Backoff(base time.Duration, attempt int, jitter float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(base) * math.Pow(2, float64(attempt-1)) * (0.5 + jitter)
	return time.Duration(min(d, float64(maxBackoff)))
}
