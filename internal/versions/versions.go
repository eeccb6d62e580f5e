// Package versions publishes versions of a function and names them with
// aliases, as AWS Lambda does. A version is a frozen copy of the function
// at publishing, kept as a function of its own (function.VersionName,
// marked VersionOf), so it runs, scales and queues beside the function
// with nothing else to know about it; its number is never given again. A
// function's last number and its aliases are a store.VersionInfo, written
// by compare-and-set. Resolve turns a qualifier ($LATEST, a number, an
// alias) into the function to run.
package versions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"time"

	"nimbus/internal/function"
	"nimbus/internal/store"
)

// Latest is the qualifier of the function itself.
const Latest = "$LATEST"

// Errors callers map to their APIs' statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInUse    = errors.New("in use")
	ErrInvalid  = errors.New("invalid")
)

// Store is what versions keeps its state in.
type Store interface {
	store.Functions
	store.Versions
}

// Manager publishes and resolves versions.
type Manager struct {
	Store Store
	// Deploy creates a function through nimbus's one deploy path (it
	// fails if the function exists); Delete removes one.
	Deploy func(ctx context.Context, fn function.Function) (store.Record, error)
	Delete func(ctx context.Context, namespace, name string) error
	// Now stamps aliases (time.Now).
	Now func() time.Time
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// aliasRE is Lambda's alias name: not only digits (a version), not $LATEST.
var aliasRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

// ValidAlias says what is wrong with an alias name, if anything.
func ValidAlias(name string) error {
	if !aliasRE.MatchString(name) {
		return fmt.Errorf("%w: alias %q: use 1-128 letters, digits, - or _", ErrInvalid, name)
	}
	if _, err := strconv.Atoi(name); err == nil {
		return fmt.Errorf("%w: alias %q is a number, which names a version: use letters too", ErrInvalid, name)
	}
	return nil
}

// frozen is the version n of fn: its copy under the version's name, at
// no minimum (a version keeps no instance warm unless asked; Lambda's
// provisioned concurrency is a setting of its own).
func frozen(fn function.Function, n int) function.Function {
	v := fn
	v.Name, v.VersionOf, v.Version = function.VersionName(fn.Name, n), fn.Name, n
	v.Scale.Min = 0
	return v
}

// same reports whether version v is fn as it is now, the annotations
// named in ignore aside.
func same(v, fn function.Function, ignore map[string]string) bool {
	a, b := frozen(fn, v.Version), v
	a.Annotations, b.Annotations = maps.Clone(a.Annotations), maps.Clone(b.Annotations)
	for k := range ignore {
		delete(a.Annotations, k)
		delete(b.Annotations, k)
	}
	if len(a.Annotations) == 0 {
		a.Annotations = nil
	}
	if len(b.Annotations) == 0 {
		b.Annotations = nil
	}
	return reflect.DeepEqual(a.WithDefaults(), b.WithDefaults())
}

// function returns the function a version is published from.
func (m *Manager) function(ctx context.Context, ns, name string) (store.Record, error) {
	rec, err := m.Store.Get(ctx, ns, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.Record{}, fmt.Errorf("%w: function %s", ErrNotFound, function.Key(ns, name))
	}
	if err != nil {
		return store.Record{}, err
	}
	if rec.Function.VersionOf != "" {
		return store.Record{}, fmt.Errorf("%w: %s is version %d of %s, not a function", ErrInvalid, name, rec.Function.Version, rec.Function.VersionOf)
	}
	return rec, nil
}

// List returns the function's published versions, oldest first, and its
// version info.
func (m *Manager) List(ctx context.Context, ns, name string) ([]store.Record, store.VersionInfo, error) {
	if _, err := m.function(ctx, ns, name); err != nil {
		return nil, store.VersionInfo{}, err
	}
	info, _, err := m.Store.VersionInfo(ctx, ns, name)
	if err != nil {
		return nil, store.VersionInfo{}, err
	}
	all, err := m.Store.List(ctx, ns)
	if err != nil {
		return nil, store.VersionInfo{}, err
	}
	var out []store.Record
	for _, rec := range all {
		if rec.Function.VersionOf == name {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b store.Record) int { return a.Function.Version - b.Function.Version })
	return out, info, nil
}

// Publish makes the function as it is now a new version, with
// annotations added to it (an empty value adds nothing); if the newest
// version is the function as it is now (the annotations named aside),
// that one is returned and created is false, as Lambda does.
func (m *Manager) Publish(ctx context.Context, ns, name string, annotations map[string]string) (rec store.Record, created bool, err error) {
	fn, err := m.function(ctx, ns, name)
	if err != nil {
		return store.Record{}, false, err
	}
	if len(name) > function.MaxVersionedName {
		return store.Record{}, false, fmt.Errorf("%w: a function name of over %d characters leaves no room for its versions' names (NAME--vN)", ErrInvalid, function.MaxVersionedName)
	}
	list, _, err := m.List(ctx, ns, name)
	if err != nil {
		return store.Record{}, false, err
	}
	if len(list) > 0 && same(list[len(list)-1].Function, fn.Function, annotations) {
		return list[len(list)-1], false, nil
	}
	// Take the number first: a number is never given twice, even if the
	// deploy then fails.
	var n int
	if err := m.update(ctx, ns, name, func(info *store.VersionInfo) error {
		info.Last++
		n = info.Last
		return nil
	}); err != nil {
		return store.Record{}, false, err
	}
	v := frozen(fn.Function, n)
	if len(annotations) > 0 {
		v.Annotations = maps.Clone(v.Annotations)
		if v.Annotations == nil {
			v.Annotations = map[string]string{}
		}
		for k, val := range annotations {
			if val != "" {
				v.Annotations[k] = val
			}
		}
	}
	rec, err = m.Deploy(ctx, v)
	if err != nil {
		return store.Record{}, false, fmt.Errorf("publishing version %d of %s: %w", n, function.Key(ns, name), err)
	}
	// Only now does it stand (an alias may name it).
	if err := m.update(ctx, ns, name, func(info *store.VersionInfo) error {
		info.Versions = append(info.Versions, n)
		slices.Sort(info.Versions)
		return nil
	}); err != nil {
		return store.Record{}, false, fmt.Errorf("publishing version %d of %s: %w", n, function.Key(ns, name), err)
	}
	return rec, true, nil
}

// update changes a function's version info by compare-and-set, retrying
// on a concurrent write; change's error stops it.
func (m *Manager) update(ctx context.Context, ns, name string, change func(*store.VersionInfo) error) error {
	for {
		info, rev, err := m.Store.VersionInfo(ctx, ns, name)
		if err != nil {
			return err
		}
		if err := change(&info); err != nil {
			return err
		}
		if err := m.Store.PutVersionInfo(ctx, info, rev); !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}

// Version returns version n of a function.
func (m *Manager) Version(ctx context.Context, ns, name string, n int) (store.Record, error) {
	info, _, err := m.Store.VersionInfo(ctx, ns, name)
	if err != nil {
		return store.Record{}, err
	}
	notFound := fmt.Errorf("%w: version %d of %s", ErrNotFound, n, function.Key(ns, name))
	if !slices.Contains(info.Versions, n) {
		return store.Record{}, notFound
	}
	rec, err := m.Store.Get(ctx, ns, function.VersionName(name, n))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (rec.Function.VersionOf != name || rec.Function.Version != n)) {
		return store.Record{}, notFound
	}
	return rec, err
}

// Resolve returns the function a qualifier of the function name runs —
// name itself for "" and $LATEST, a version for its number, an alias's
// version — and the version it is ($LATEST or the number).
func (m *Manager) Resolve(ctx context.Context, ns, name, qualifier string) (target, version string, err error) {
	if qualifier == "" || qualifier == Latest {
		return name, Latest, nil
	}
	n, err := strconv.Atoi(qualifier)
	if err != nil {
		if err := ValidAlias(qualifier); err != nil {
			return "", "", err
		}
		info, _, err := m.Store.VersionInfo(ctx, ns, name)
		if err != nil {
			return "", "", err
		}
		a, ok := alias(info, qualifier)
		if !ok {
			return "", "", fmt.Errorf("%w: alias %s of %s", ErrNotFound, qualifier, function.Key(ns, name))
		}
		n = a.Version
	}
	if n < 1 {
		return "", "", fmt.Errorf("%w: version %q: versions are numbered from 1", ErrInvalid, qualifier)
	}
	if _, err := m.Version(ctx, ns, name, n); err != nil {
		return "", "", err
	}
	return function.VersionName(name, n), strconv.Itoa(n), nil
}

func alias(info store.VersionInfo, name string) (store.Alias, bool) {
	for _, a := range info.Aliases {
		if a.Name == name {
			return a, true
		}
	}
	return store.Alias{}, false
}

// Alias returns one alias.
func (m *Manager) Alias(ctx context.Context, ns, name, aliasName string) (store.Alias, error) {
	if _, err := m.function(ctx, ns, name); err != nil {
		return store.Alias{}, err
	}
	info, _, err := m.Store.VersionInfo(ctx, ns, name)
	if err != nil {
		return store.Alias{}, err
	}
	a, ok := alias(info, aliasName)
	if !ok {
		return store.Alias{}, fmt.Errorf("%w: alias %s of %s", ErrNotFound, aliasName, function.Key(ns, name))
	}
	return a, nil
}

// AliasChange is what SetAlias writes: a version (0: keep), a description
// (nil: keep).
type AliasChange struct {
	Version     int
	Description *string
}

// SetAlias creates an alias (create: ErrExists if it exists) or changes
// one (ErrNotFound if it does not); its version must exist.
func (m *Manager) SetAlias(ctx context.Context, ns, name, aliasName string, c AliasChange, create bool) (store.Alias, error) {
	if err := ValidAlias(aliasName); err != nil {
		return store.Alias{}, err
	}
	if _, err := m.function(ctx, ns, name); err != nil {
		return store.Alias{}, err
	}
	if create && c.Version == 0 {
		return store.Alias{}, fmt.Errorf("%w: an alias needs the version it names", ErrInvalid)
	}
	if c.Version != 0 {
		if _, err := m.Version(ctx, ns, name, c.Version); err != nil {
			return store.Alias{}, err
		}
	}
	var out store.Alias
	err := m.update(ctx, ns, name, func(info *store.VersionInfo) error {
		a, ok := alias(*info, aliasName)
		switch {
		case create && ok:
			return fmt.Errorf("%w: alias %s of %s", ErrExists, aliasName, function.Key(ns, name))
		case !create && !ok:
			return fmt.Errorf("%w: alias %s of %s", ErrNotFound, aliasName, function.Key(ns, name))
		case c.Version != 0 && !slices.Contains(info.Versions, c.Version):
			// Deleted since it was looked up: checked in the record the
			// alias is written to, so no alias names a deleted version.
			return fmt.Errorf("%w: version %d of %s", ErrNotFound, c.Version, function.Key(ns, name))
		}
		a.Name = aliasName
		if c.Version != 0 {
			a.Version = c.Version
		}
		if c.Description != nil {
			a.Description = *c.Description
		}
		a.Updated = m.now().UTC()
		info.Aliases = slices.DeleteFunc(slices.Clone(info.Aliases), func(x store.Alias) bool { return x.Name == aliasName })
		info.Aliases = append(info.Aliases, a)
		slices.SortFunc(info.Aliases, func(x, y store.Alias) int { return cmp.Compare(x.Name, y.Name) })
		out = a
		return nil
	})
	return out, err
}

// DeleteAlias removes an alias.
func (m *Manager) DeleteAlias(ctx context.Context, ns, name, aliasName string) error {
	return m.update(ctx, ns, name, func(info *store.VersionInfo) error {
		if _, ok := alias(*info, aliasName); !ok {
			return fmt.Errorf("%w: alias %s of %s", ErrNotFound, aliasName, function.Key(ns, name))
		}
		info.Aliases = slices.DeleteFunc(slices.Clone(info.Aliases), func(x store.Alias) bool { return x.Name == aliasName })
		return nil
	})
}

// DeleteVersion removes version n, unless an alias names it (ErrInUse):
// it stops standing in the function's record first (by compare-and-set,
// so an alias written meanwhile either came first and keeps it, or finds
// it gone), then its function goes.
func (m *Manager) DeleteVersion(ctx context.Context, ns, name string, n int) error {
	if _, err := m.Version(ctx, ns, name, n); err != nil {
		return err
	}
	err := m.update(ctx, ns, name, func(info *store.VersionInfo) error {
		for _, a := range info.Aliases {
			if a.Version == n {
				return fmt.Errorf("%w: alias %s names version %d of %s: point it elsewhere or delete it first", ErrInUse, a.Name, n, function.Key(ns, name))
			}
		}
		info.Versions = slices.DeleteFunc(info.Versions, func(v int) bool { return v == n })
		return nil
	})
	if err != nil {
		return err
	}
	return m.Delete(ctx, ns, function.VersionName(name, n))
}

// DeleteAll removes every version of a function and its aliases: what
// deleting the function deletes with it.
func (m *Manager) DeleteAll(ctx context.Context, ns, name string) error {
	all, err := m.Store.List(ctx, ns)
	if err != nil {
		return err
	}
	var errs []error
	for _, rec := range all {
		if rec.Function.VersionOf == name {
			if err := m.Delete(ctx, ns, rec.Function.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		errs = append(errs, m.Store.DeleteVersionInfo(ctx, ns, name))
	}
	return errors.Join(errs...)
}
