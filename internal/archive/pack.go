// Package archive packs a function's directory into a gzipped tar and unpacks
// it again. Only regular files and directories travel; unpacking refuses
// anything that would leave the target directory.
package archive

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Stats counts what Pack wrote.
type Stats struct {
	Files int
	Bytes int64
}

// skipped names are never packed.
var skipped = map[string]bool{".git": true, ".hg": true, ".svn": true, ".DS_Store": true}

// Pack writes every regular file under dir to w as a gzipped tar, in a
// deterministic order with fixed times, so that the same tree always gives the
// same bytes (and the same digest), leaving out what dir's IgnoreFile names.
// Symbolic links are refused.
func Pack(dir string, w io.Writer) (Stats, error) {
	var st Stats
	rules, err := readIgnore(dir)
	if err != nil {
		return st, err
	}
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		if skipped[d.Name()] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		name := filepath.ToSlash(rel)
		if rules.ignored(name, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, Format: tar.FormatPAX})
		case info.Mode().IsRegular():
			mode := int64(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: info.Size(), Format: tar.FormatPAX}); err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			n, err := io.Copy(tw, f)
			st.Files++
			st.Bytes += n
			return err
		default:
			return fmt.Errorf("%s is a %s: packages hold only files and directories; copy the target in instead", name, strings.ToLower(info.Mode().Type().String()))
		}
	})
	if err != nil {
		return st, err
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	return st, gz.Close()
}
