// Package trigger runs functions on a cron schedule. A trigger names a
// schedule, a target function and a body; the scheduler queues an async
// invocation of the target at each scheduled time, once, even across
// restarts and with several gateways running: each firing has a call id
// derived from the trigger and the scheduled time, claimed in the queue's
// idempotency window before it is queued.
//
// Missed-fire policy: a scheduled time is fired if it is found due no later
// than Grace (default 1 hour) after it. After downtime, only the latest
// missed time within Grace fires; earlier misses are skipped and counted in
// the log — a trigger never fires a burst to catch up.
package trigger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/robfig/cron/v3"

	"nimbus/internal/function"
)

// ErrNotFound means no such trigger.
var ErrNotFound = errors.New("trigger not found")

// ErrConflict means a compare-and-set lost.
var ErrConflict = errors.New("trigger changed concurrently")

// Trigger is one schedule.
type Trigger struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Schedule is a standard 5-field cron expression (minute hour dom month
	// dow), a descriptor such as @hourly, or @every DURATION; it is read in
	// UTC unless it starts with CRON_TZ=Area/City.
	Schedule string `json:"schedule"`
	Function string `json:"function"` // in the trigger's namespace
	// Path below the function, default "/".
	Path        string    `json:"path,omitempty"`
	Body        string    `json:"body,omitempty"`
	ContentType string    `json:"contentType,omitempty"`
	Created     time.Time `json:"created"`
}

// MaxBody bounds a trigger's body.
const MaxBody = 256 << 10

// Validate checks every field and says what to fix.
func (t Trigger) Validate() error {
	if err := function.ValidateName("name", t.Name); err != nil {
		return err
	}
	if err := function.ValidateName("namespace", t.Namespace); err != nil {
		return err
	}
	if err := function.ValidateName("function", t.Function); err != nil {
		return err
	}
	if _, err := Parse(t.Schedule); err != nil {
		return &function.FieldError{Field: "schedule", Msg: err.Error()}
	}
	if t.Path != "" && t.Path[0] != '/' {
		return &function.FieldError{Field: "path", Msg: "path must start with / (or be empty)"}
	}
	if len(t.Body) > MaxBody {
		return &function.FieldError{Field: "body", Msg: fmt.Sprintf("body is %d bytes; at most %d", len(t.Body), MaxBody)}
	}
	return nil
}

// Schedule gives the scheduled times after a time.
type Schedule interface {
	Next(after time.Time) time.Time
}

// Parse reads a schedule.
func Parse(spec string) (Schedule, error) {
	if spec == "" {
		return nil, errors.New(`schedule is required: a cron expression such as "*/5 * * * *", "@hourly" or "@every 30s"`)
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %v (use 5 fields: minute hour day-of-month month day-of-week, or @hourly, @daily, @every 30s)", spec, err)
	}
	return s, nil
}

// maxScan bounds how many missed times Due walks over.
const maxScan = 100_000

// Due decides what to do at now, given the last scheduled time handled.
// latest is the latest scheduled time in (last, now] (zero if none): it
// fires if it is no older than grace, and either way it becomes the last
// handled. skipped counts the times in (last, now] that do not fire; next is
// the first scheduled time after now.
func Due(s Schedule, last, now time.Time, grace time.Duration) (latest time.Time, fire bool, skipped int, next time.Time) {
	n := 0
	t := s.Next(last)
	for ; !t.IsZero() && !t.After(now) && n < maxScan; t = s.Next(t) {
		latest = t
		n++
	}
	if n == maxScan { // a schedule this dense after this long: jump to now
		latest, t = now, s.Next(now)
	}
	next = t
	if latest.IsZero() {
		return time.Time{}, false, 0, next
	}
	if now.Sub(latest) > grace {
		return latest, false, n, next
	}
	return latest, true, n - 1, next
}

// CallID is the call id of the firing of a trigger at a scheduled time: the
// same for every gateway and every restart.
func CallID(namespace, name string, at time.Time) string {
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	return "cron-" + hex.EncodeToString(sum[:8]) + "-" + strconv.FormatInt(at.Unix(), 10)
}

// Store keeps triggers and, per trigger, the last scheduled time handled.
type Store interface {
	Put(ctx context.Context, t Trigger) (created bool, err error)
	Get(ctx context.Context, namespace, name string) (Trigger, error)
	List(ctx context.Context, namespace string) ([]Trigger, error)
	Delete(ctx context.Context, namespace, name string) error
	// LastFired returns the last scheduled time handled and a revision for
	// SetLastFired (zero time, revision 0 if none).
	LastFired(ctx context.Context, namespace, name string) (time.Time, uint64, error)
	// SetLastFired records at if the record is still at rev (ErrConflict if not).
	SetLastFired(ctx context.Context, namespace, name string, at time.Time, rev uint64) error
}
