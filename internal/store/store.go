// Package store declares where nimbus keeps its state: function specs (with
// revisions, compare-and-set and watch), function packages (content-addressed
// by sha256) and function log lines (bounded by age and size).
//
// Backends live in sub-packages (natsstore); storetest is the conformance suite
// every backend must pass. Implementations are safe for concurrent use.
package store

import (
	"context"
	"errors"
	"io"
	"time"

	"nimbus/internal/function"
)

// Sentinel errors; backends wrap them with %w so callers test with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrConflict    = errors.New("revision conflict")
	ErrUnavailable = errors.New("store unavailable")
)

// Record is a stored function with its revision. Revisions grow with every write.
type Record struct {
	Function function.Function
	Revision uint64
	Updated  time.Time
}

// EventType says what happened to a function.
type EventType int

const (
	// EventPut: the function was created or updated.
	EventPut EventType = iota
	// EventDelete: the function was deleted; Record holds only its key fields.
	EventDelete
)

// Event is one change seen by Watch.
type Event struct {
	Type   EventType
	Record Record
	// Err, if set, says the stored entry could not be read; Record then
	// holds only the function's key fields and revision.
	Err error
}

// Functions stores function specs.
type Functions interface {
	// Create stores fn if no function with its key exists, else ErrExists.
	Create(ctx context.Context, fn function.Function) (Record, error)
	// Update replaces fn if its current revision is rev, else ErrConflict
	// (or ErrNotFound when it is gone).
	Update(ctx context.Context, fn function.Function, rev uint64) (Record, error)
	// Get returns the current record, or ErrNotFound.
	Get(ctx context.Context, namespace, name string) (Record, error)
	// Revisions returns the function's stored revisions since it was last
	// created, newest first: the current one and as many before it as the
	// store keeps. A missing function is ErrNotFound.
	Revisions(ctx context.Context, namespace, name string) ([]Record, error)
	// List returns the functions of a namespace ("" for all), sorted by key.
	List(ctx context.Context, namespace string) ([]Record, error)
	// Delete removes a function. rev 0 deletes unconditionally; otherwise the
	// current revision must match (ErrConflict). A missing function is ErrNotFound.
	Delete(ctx context.Context, namespace, name string, rev uint64) error
	// Watch sends every current function as EventPut, then nil-free changes as
	// they happen; initial is closed once the current state has been sent.
	// The channel is closed when ctx ends.
	Watch(ctx context.Context) (events <-chan Event, initial <-chan struct{}, err error)
}

// PackageInfo describes a stored package.
type PackageInfo struct {
	Digest string // "sha256:<hex>"
	Size   int64
}

// Packages stores function packages, addressed by the sha256 of their bytes.
type Packages interface {
	// PutPackage stores the bytes read from r and returns their digest. Storing
	// the same bytes twice is harmless and returns the same digest.
	PutPackage(ctx context.Context, r io.Reader) (PackageInfo, error)
	// OpenPackage returns the bytes of a package, or ErrNotFound.
	OpenPackage(ctx context.Context, digest string) (io.ReadCloser, error)
	// StatPackage returns a package's info, or ErrNotFound.
	StatPackage(ctx context.Context, digest string) (PackageInfo, error)
}

// LogLine is one line a function instance wrote.
type LogLine struct {
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace"`
	Function  string    `json:"function"`
	Instance  string    `json:"instance"`
	Stream    string    `json:"stream"` // "stdout", "stderr" or "system"
	Text      string    `json:"text"`
	// ID, when set, names the line across writers: the same line
	// appended again under the same ID within a few minutes is kept once
	// (every gateway follows every pod's log on Kubernetes).
	ID string `json:"-"`
}

// Logs keeps function log lines, oldest dropped first past the backend's bounds.
type Logs interface {
	// AppendLog records a line. It does not wait for durable storage.
	AppendLog(ctx context.Context, line LogLine) error
	// ReadLogs calls fn for each line of the function at or after since, in
	// order. Without follow it returns after the last stored line; with follow it
	// waits for new lines until ctx ends (then returns nil). An error from fn
	// stops the read and is returned.
	ReadLogs(ctx context.Context, namespace, name string, since time.Time, follow bool, fn func(LogLine) error) error
}

// SecretInfo describes a secret without its value.
type SecretInfo struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Updated   time.Time `json:"updated"`
}

// Secrets keeps secret values. Only the data plane reads values (to hand them
// to instances as files); the APIs list names.
type Secrets interface {
	// PutSecret creates (create true: ErrExists if present) or updates
	// (create false: ErrNotFound if absent) a secret.
	PutSecret(ctx context.Context, namespace, name string, value []byte, create bool) error
	// SecretValue returns a secret's value, or ErrNotFound.
	SecretValue(ctx context.Context, namespace, name string) ([]byte, error)
	// ListSecrets returns the secrets of a namespace ("" for all), sorted.
	ListSecrets(ctx context.Context, namespace string) ([]SecretInfo, error)
	// DeleteSecret removes a secret, or returns ErrNotFound.
	DeleteSecret(ctx context.Context, namespace, name string) error
}

// AccessKey is a key for nimbus's AWS-shaped APIs (signed with AWS
// Signature Version 4): its id, its secret, and the namespaces it may act
// in ("*": every one).
type AccessKey struct {
	ID          string    `json:"id"`
	Secret      string    `json:"secret,omitempty"`
	Namespaces  []string  `json:"namespaces"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
}

// Keys keeps access keys. Their secrets leave only to verify signatures.
type Keys interface {
	// CreateKey stores a new key, or returns ErrExists for a taken id.
	CreateKey(ctx context.Context, k AccessKey) error
	// Key returns a key with its secret, or ErrNotFound.
	Key(ctx context.Context, id string) (AccessKey, error)
	// ListKeys returns every key without its secret, sorted by id.
	ListKeys(ctx context.Context) ([]AccessKey, error)
	// DeleteKey removes a key, or returns ErrNotFound.
	DeleteKey(ctx context.Context, id string) error
}

// Alias names a published version of a function, as Lambda's aliases.
type Alias struct {
	Name        string    `json:"name"`
	Version     int       `json:"version"`
	Description string    `json:"description,omitempty"`
	Updated     time.Time `json:"updated"`
}

// VersionInfo is what a function keeps of its published versions beside
// the versions themselves (which are functions: function.VersionOf): the
// last number given, never given again, the versions that stand, and its
// aliases, sorted by name.
type VersionInfo struct {
	Namespace string `json:"namespace"`
	Function  string `json:"function"`
	Last      int    `json:"last"`
	// Versions are the numbers published and not deleted, ascending: an
	// alias may name only these, written in the same record.
	Versions []int   `json:"versions,omitempty"`
	Aliases  []Alias `json:"aliases,omitempty"`
}

// Versions keeps each function's VersionInfo.
type Versions interface {
	// VersionInfo returns a function's record and its revision; for a
	// function that never published one it is a zero record (with the
	// key fields set) and revision 0.
	VersionInfo(ctx context.Context, namespace, name string) (VersionInfo, uint64, error)
	// PutVersionInfo stores v if the stored revision is rev (0: there is
	// none), else ErrConflict.
	PutVersionInfo(ctx context.Context, v VersionInfo, rev uint64) error
	// DeleteVersionInfo removes a function's record; none is no error.
	DeleteVersionInfo(ctx context.Context, namespace, name string) error
}

// Store is everything nimbus keeps.
type Store interface {
	Functions
	Packages
	Logs
	Secrets
	Keys
	Versions
	// Ping reports whether the backend answers.
	Ping(ctx context.Context) error
}
