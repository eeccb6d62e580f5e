// Package client is the Go client of nimbus's /v1 API; the CLI is built on it.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/apiserver"
	"nimbus/internal/calls"
	"nimbus/internal/function"
	"nimbus/internal/gateway"
	"nimbus/internal/queue"
	"nimbus/internal/store"
	"nimbus/internal/trigger"
)

// Client talks to one nimbus.
type Client struct {
	URL   string // e.g. http://127.0.0.1:8080
	Token string
	HTTP  *http.Client
}

// Error is an error answer from the API.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, hdr http.Header) (*http.Response, error) {
	u := strings.TrimRight(c.URL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach nimbus at %s: %w (is 'nimbus up' running? set --url or NIMBUS_URL)", c.URL, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	var body struct {
		Error struct {
			Code, Message, Field string
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
	} else {
		e.Message = strings.TrimSpace(string(b))
	}
	return e
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	resp, err := c.do(ctx, "GET", path, q, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

func nsQuery(ns string) url.Values {
	if ns == "" {
		return nil
	}
	return url.Values{"namespace": {ns}}
}

// UploadPackage stores a gzipped tar and returns its digest.
func (c *Client) UploadPackage(ctx context.Context, r io.Reader) (string, error) {
	resp, err := c.do(ctx, "POST", "/v1/packages", nil, r, http.Header{"Content-Type": {"application/gzip"}})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ Digest string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	return out.Digest, nil
}

// Deploy creates or updates a function.
func (c *Client) Deploy(ctx context.Context, fn function.Function) (apiserver.FunctionView, bool, error) {
	var v apiserver.FunctionView
	b, err := json.Marshal(fn)
	if err != nil {
		return v, false, err
	}
	resp, err := c.do(ctx, "PUT", "/v1/functions/"+url.PathEscape(fn.Name), nsQuery(fn.Namespace), bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return v, false, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v, resp.StatusCode == http.StatusCreated, err
}

// List returns the functions of a namespace, or of all for "".
func (c *Client) List(ctx context.Context, ns string) ([]apiserver.FunctionView, error) {
	var out struct{ Functions []apiserver.FunctionView }
	err := c.getJSON(ctx, "/v1/functions", nsQuery(ns), &out)
	return out.Functions, err
}

// Get returns one function.
func (c *Client) Get(ctx context.Context, ns, name string) (apiserver.FunctionView, error) {
	var v apiserver.FunctionView
	err := c.getJSON(ctx, "/v1/functions/"+url.PathEscape(name), nsQuery(ns), &v)
	return v, err
}

// Instances lists a function's instances.
func (c *Client) Instances(ctx context.Context, ns, name string) ([]gateway.InstanceStatus, error) {
	var out struct{ Instances []gateway.InstanceStatus }
	err := c.getJSON(ctx, "/v1/functions/"+url.PathEscape(name)+"/instances", nsQuery(ns), &out)
	return out.Instances, err
}

// Scale sets a function's replicas (a floor the autoscaler decides above;
// 0 leaves it to the autoscaler alone), without a new revision.
func (c *Client) Scale(ctx context.Context, ns, name string, replicas int) (apiserver.FunctionView, error) {
	var v apiserver.FunctionView
	b, _ := json.Marshal(apiserver.ScaleRequest{Replicas: &replicas})
	resp, err := c.do(ctx, "POST", "/v1/functions/"+url.PathEscape(name)+"/scale", nsQuery(ns), bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v, err
}

// Versions returns a function's published versions and aliases.
func (c *Client) Versions(ctx context.Context, ns, name string) (apiserver.VersionsView, error) {
	var v apiserver.VersionsView
	err := c.getJSON(ctx, "/v1/functions/"+url.PathEscape(name)+"/versions", nsQuery(ns), &v)
	return v, err
}

// Publish publishes the function as it is now as a version; created is
// false when the newest version already was it.
func (c *Client) Publish(ctx context.Context, ns, name string) (v apiserver.VersionView, created bool, err error) {
	resp, err := c.do(ctx, "POST", "/v1/functions/"+url.PathEscape(name)+"/versions", nsQuery(ns), nil, nil)
	if err != nil {
		return v, false, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&v)
	return v, resp.StatusCode == http.StatusCreated, err
}

// Delete removes a function.
func (c *Client) Delete(ctx context.Context, ns, name string) error {
	resp, err := c.do(ctx, "DELETE", "/v1/functions/"+url.PathEscape(name), nsQuery(ns), nil, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Logs calls fn for each log line; with follow it runs until ctx ends.
func (c *Client) Logs(ctx context.Context, ns, name string, since time.Duration, follow bool, fn func(store.LogLine) error) error {
	q := nsQuery(ns)
	if q == nil {
		q = url.Values{}
	}
	if since > 0 {
		q.Set("since", since.String())
	}
	if follow {
		q.Set("follow", "true")
	}
	resp, err := c.do(ctx, "GET", "/v1/functions/"+url.PathEscape(name)+"/logs", q, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l store.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("bad log line from server: %w", err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// Invoke calls a function through the gateway. The caller closes the body.
func (c *Client) Invoke(ctx context.Context, ns, name, method, path string, body io.Reader, hdr http.Header) (*http.Response, error) {
	target := name
	if ns != "" && ns != function.DefaultNamespace {
		target += "." + ns
	}
	u := strings.TrimRight(c.URL, "/") + "/function/" + target + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach nimbus at %s: %w (is 'nimbus up' running? set --url or NIMBUS_URL)", c.URL, err)
	}
	return resp, nil
}

// DeadLetters lists dead letters, of one function if name is not "".
func (c *Client) DeadLetters(ctx context.Context, ns, name string) ([]queue.DeadLetter, error) {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
	}
	if name != "" {
		q.Set("function", name)
	}
	var out struct{ DeadLetters []queue.DeadLetter }
	err := c.getJSON(ctx, "/v1/deadletters", q, &out)
	return out.DeadLetters, err
}

// DeadLetter returns one dead letter.
func (c *Client) DeadLetter(ctx context.Context, callID string) (queue.DeadLetter, error) {
	var d queue.DeadLetter
	err := c.getJSON(ctx, "/v1/deadletters/"+url.PathEscape(callID), nil, &d)
	return d, err
}

// Redrive queues a dead letter's invocation again.
func (c *Client) Redrive(ctx context.Context, callID string) error {
	resp, err := c.do(ctx, "POST", "/v1/deadletters/"+url.PathEscape(callID)+"/redrive", nil, nil, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// PurgeDeadLetter removes a dead letter.
func (c *Client) PurgeDeadLetter(ctx context.Context, callID string) error {
	resp, err := c.do(ctx, "DELETE", "/v1/deadletters/"+url.PathEscape(callID), nil, nil, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Calls lists call records, most recent first: of one function if name is
// not "", in one namespace if ns is not "".
func (c *Client) Calls(ctx context.Context, ns, name string, limit int) ([]calls.Record, error) {
	q := url.Values{}
	if ns != "" {
		q.Set("namespace", ns)
	}
	if name != "" {
		q.Set("function", name)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct{ Calls []calls.Record }
	err := c.getJSON(ctx, "/v1/calls", q, &out)
	return out.Calls, err
}

// Call returns one call record.
func (c *Client) Call(ctx context.Context, callID string) (calls.Record, error) {
	var rec calls.Record
	err := c.getJSON(ctx, "/v1/calls/"+url.PathEscape(callID), nil, &rec)
	return rec, err
}

// PutTrigger creates or replaces a trigger; created reports which.
func (c *Client) PutTrigger(ctx context.Context, t trigger.Trigger) (trigger.Trigger, bool, error) {
	b, err := json.Marshal(map[string]string{"schedule": t.Schedule, "function": t.Function, "path": t.Path,
		"body": t.Body, "contentType": t.ContentType})
	if err != nil {
		return t, false, err
	}
	resp, err := c.do(ctx, "PUT", "/v1/triggers/"+url.PathEscape(t.Name), nsQuery(t.Namespace), bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return t, false, err
	}
	defer resp.Body.Close()
	var out trigger.Trigger
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, resp.StatusCode == http.StatusCreated, err
}

// Triggers lists the triggers of a namespace, or of all for "".
func (c *Client) Triggers(ctx context.Context, ns string) ([]trigger.Trigger, error) {
	var out struct{ Triggers []trigger.Trigger }
	err := c.getJSON(ctx, "/v1/triggers", nsQuery(ns), &out)
	return out.Triggers, err
}

// DeleteTrigger removes a trigger.
func (c *Client) DeleteTrigger(ctx context.Context, ns, name string) error {
	resp, err := c.do(ctx, "DELETE", "/v1/triggers/"+url.PathEscape(name), nsQuery(ns), nil, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// CreateKey makes an access key for the AWS-shaped APIs; the secret is in
// the answer only.
func (c *Client) CreateKey(ctx context.Context, namespaces []string, description string) (store.AccessKey, error) {
	b, err := json.Marshal(apiserver.KeyRequest{Namespaces: namespaces, Description: description})
	if err != nil {
		return store.AccessKey{}, err
	}
	resp, err := c.do(ctx, "POST", "/v1/keys", nil, bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return store.AccessKey{}, err
	}
	defer resp.Body.Close()
	var k store.AccessKey
	return k, json.NewDecoder(resp.Body).Decode(&k)
}

// Keys lists the access keys, without their secrets.
func (c *Client) Keys(ctx context.Context) ([]store.AccessKey, error) {
	var out struct{ Keys []store.AccessKey }
	err := c.getJSON(ctx, "/v1/keys", nil, &out)
	return out.Keys, err
}

// DeleteKey removes an access key.
func (c *Client) DeleteKey(ctx context.Context, id string) error {
	resp, err := c.do(ctx, "DELETE", "/v1/keys/"+url.PathEscape(id), nil, nil, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
