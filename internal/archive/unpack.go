package archive

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Limits bound what one package may unpack to.
type Limits struct {
	MaxBytes int64 // the sum of its files' sizes; default 1 GiB
	MaxFiles int   // entries; default 20,000
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 1 << 30
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 20000
	}
	return l
}

// Error is a package refused for what it holds (not for an I/O failure):
// an entry leaving the package, a link, a device, too many bytes or files,
// or data that is not a gzipped tar. Its message says which entry and why.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func refuse(format string, args ...any) error { return &Error{fmt.Sprintf(format, args...)} }

// IsRefused reports whether err is a package refused for its content.
func IsRefused(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Summary is what a package holds.
type Summary struct {
	Bytes int64 // the sum of its files' sizes
	Files int
}

// walk reads a gzipped tar and hands each checked entry to visit (nil for
// a check only): regular files and directories inside the package, within
// the limits.
func walk(r io.Reader, lim Limits, visit func(h *tar.Header, name string, tr *tar.Reader) error) (Summary, error) {
	lim = lim.withDefaults()
	var sum Summary
	gz, err := gzip.NewReader(r)
	if err != nil {
		return sum, refuse("package is not gzip data: %v", err)
	}
	tr := tar.NewReader(gz)
	kinds := map[string]byte{".": 'd'} // 'd' directory, 'f' file: what Unpack could not make both of
	for {
		h, err := tr.Next()
		if err == io.EOF {
			// Read what follows the tar (gzip padding) so a truncated or
			// corrupt stream is noticed.
			if _, err := io.Copy(io.Discard, gz); err != nil {
				return sum, refuse("package is not valid gzip data: %v", err)
			}
			return sum, nil
		}
		if err != nil {
			return sum, refuse("package is not a valid tar: %v", err)
		}
		sum.Files++
		if sum.Files > lim.MaxFiles {
			return sum, refuse("package has more than %d files", lim.MaxFiles)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || strings.ContainsRune(h.Name, 0) {
			return sum, refuse("package entry %q leaves the package directory", h.Name)
		}
		if err := checkShape(kinds, name, h.Typeflag == tar.TypeDir); err != nil {
			return sum, refuse("package entry %q %v", h.Name, err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
		case tar.TypeReg:
			if h.Size < 0 {
				return sum, refuse("package entry %q has a negative size", h.Name)
			}
			sum.Bytes += h.Size
			if sum.Bytes > lim.MaxBytes {
				return sum, refuse("package unpacks to more than %d bytes (the limit per package)", lim.MaxBytes)
			}
		default:
			return sum, refuse("package entry %q is a %s: only files and directories are allowed", h.Name, typeName(h.Typeflag))
		}
		if visit != nil {
			if err := visit(h, name, tr); err != nil {
				return sum, err
			}
		} else if h.Typeflag == tar.TypeReg {
			// Read the data through: the gzip stream must be whole.
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return sum, refuse("package entry %q is cut short: %v", h.Name, err)
			}
		}
	}
}

// checkShape records name as a directory or a file, refusing what Unpack
// could not make: a file twice, a file where a directory is (or the
// package's own directory), or something under a file.
func checkShape(kinds map[string]byte, name string, dir bool) error {
	for p := filepath.Dir(name); p != "."; p = filepath.Dir(p) {
		if kinds[p] == 'f' {
			return fmt.Errorf("is under %q, which is a file", p)
		}
		kinds[p] = 'd'
	}
	switch k := kinds[name]; {
	case dir && k == 'f':
		return errors.New("is a directory, and a file of that name came before")
	case !dir && k == 'd':
		return errors.New("is a file where the package has a directory")
	case !dir && k == 'f':
		return errors.New("appears twice")
	}
	if dir {
		kinds[name] = 'd'
	} else {
		kinds[name] = 'f'
	}
	return nil
}

// Check reads a whole package and says what Unpack would refuse, without
// writing anything: a package is checked when it is uploaded, not at the
// first start of a function.
func Check(r io.Reader, lim Limits) (Summary, error) { return walk(r, lim, nil) }

// Unpack extracts a gzipped tar into dir. It refuses paths that leave dir,
// links, device files and archives over the limits. Files keep their
// execute bits and are readable by their owner and group only; dir's
// owner decides who that is.
func Unpack(r io.Reader, dir string, lim Limits) (Summary, error) {
	return walk(r, lim, func(h *tar.Header, name string, tr *tar.Reader) error {
		target := filepath.Join(dir, name)
		if h.Typeflag == tar.TypeDir {
			return os.MkdirAll(target, 0o750)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
			return err
		}
		mode := os.FileMode(0o640)
		if h.FileInfo().Mode()&0o111 != 0 {
			mode = 0o750
		}
		return writeFile(target, tr, mode)
	})
}

func writeFile(path string, r io.Reader, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chmod(path, mode) // the umask must not take bits the owner needs
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("entry of type %q", t)
}
