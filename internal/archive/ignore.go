package archive

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// IgnoreFile, at the top of a function's directory, names what Pack
// leaves out, in .gitignore's way (a subset): one pattern a line, blank
// lines and lines starting with # skipped; a pattern with a / inside
// matches the path from the top (a leading / only anchors it), one without
// matches a name at any depth; a trailing / matches directories only; ! in
// front takes a path back in; the last pattern that matches decides. A
// directory left out is left out whole. Patterns are path.Match's.
const IgnoreFile = ".nimbusignore"

type ignoreRule struct {
	pattern  string
	anchored bool // match the whole path, not a name
	dirOnly  bool
	negate   bool
}

type ignoreRules []ignoreRule

// readIgnore reads dir's IgnoreFile, if it has one.
func readIgnore(dir string) (ignoreRules, error) {
	f, err := os.Open(filepath.Join(dir, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rules ignoreRules
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var r ignoreRule
		if r.negate = strings.HasPrefix(line, "!"); r.negate {
			line = line[1:]
		}
		if r.dirOnly = strings.HasSuffix(line, "/"); r.dirOnly {
			line = strings.TrimRight(line, "/")
		}
		r.anchored = strings.Contains(line, "/")
		r.pattern = strings.TrimPrefix(line, "/")
		if _, err := path.Match(r.pattern, ""); err != nil || r.pattern == "" {
			return nil, fmt.Errorf("%s line %d: %q is not a pattern (path.Match's syntax: *, ?, [a-z], \\)", IgnoreFile, n, sc.Text())
		}
		rules = append(rules, r)
	}
	return rules, sc.Err()
}

// ignored reports whether the rules leave out name (slash-separated,
// relative to the top).
func (rs ignoreRules) ignored(name string, isDir bool) bool {
	out := false
	for _, r := range rs {
		if r.dirOnly && !isDir {
			continue
		}
		subject := name
		if !r.anchored {
			subject = path.Base(name)
		}
		if ok, _ := path.Match(r.pattern, subject); ok {
			out = !r.negate
		}
	}
	return out
}
