package function

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("30s", "1m30s")
// in JSON and YAML. In JSON a bare number is read as seconds.
type Duration time.Duration

// String formats d as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return d.parse(s)
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\" or a number of seconds")
	}
	if secs != secs || secs > maxSeconds || secs < -maxSeconds {
		return fmt.Errorf("duration %s seconds is out of range: write it as a string such as \"30s\"", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// maxSeconds is the longest duration time.Duration holds, in seconds.
const maxSeconds = float64(1<<63-1) / float64(time.Second)

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalText reads a duration string (used by YAML decoders).
func (d *Duration) UnmarshalText(b []byte) error { return d.parse(string(b)) }

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration: write it as \"500ms\", \"30s\" or \"5m\"", s)
	}
	*d = Duration(v)
	return nil
}
