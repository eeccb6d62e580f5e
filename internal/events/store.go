package events

import "context"

// Kinds of configuration.
const (
	KindEventTypes    = "eventtypes"
	KindFunctions     = "functions"
	KindSubscriptions = "subscriptions"
	KindCORS          = "cors"
)

// Store keeps the event gateway's configuration, by space, kind and ID.
// Values are JSON. Implementations keep a snapshot of everything in memory
// for the events path; a write is in the snapshot of the process that made
// it when the write returns, and in other processes' shortly after.
type Store interface {
	// Create stores a new value, or returns ErrExists.
	Create(ctx context.Context, space, kind, id string, value []byte) error
	// Update replaces a value, or returns ErrNotFound.
	Update(ctx context.Context, space, kind, id string, value []byte) error
	// Delete removes a value, or returns ErrNotFound.
	Delete(ctx context.Context, space, kind, id string) error
	// Snapshot is the current configuration of every space.
	Snapshot() *Config
}

// Config is a snapshot: every value, decoded.
type Config struct {
	EventTypes    map[string]EventType    // by space + "\x00" + name
	Functions     map[string]Function     // by space + "\x00" + functionId
	Subscriptions map[string]Subscription // by space + "\x00" + subscriptionId
	CORS          map[string]CORS         // by space + "\x00" + corsId
}

// Key is how a Config map keys a value.
func Key(space, id string) string { return space + "\x00" + id }
