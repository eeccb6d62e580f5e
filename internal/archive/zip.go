package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"path"
	"strings"
)

// FromZip converts a zip (a Lambda deployment package) into a package: a
// gzipped tar with the same files, directories and permission bits. A
// link, a device, a name leaving the package or an unreadable entry is
// refused (IsRefused) naming the entry; the result is checked with Check
// by whoever stores it.
func FromZip(zipped []byte) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		return nil, refuse("not a zip archive: %v", err)
	}
	var out bytes.Buffer
	gz := gzip.NewWriter(&out)
	tw := tar.NewWriter(gz)
	for _, f := range zr.File {
		name := strings.TrimPrefix(f.Name, "./")
		clean := path.Clean(name)
		if name == "" || path.IsAbs(name) || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsRune(name, '\\') {
			return nil, refuse("zip entry %q leaves the package", f.Name)
		}
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: clean + "/", Mode: int64(mode.Perm() | 0o700), ModTime: f.Modified}); err != nil {
				return nil, err
			}
			continue
		case !mode.IsRegular():
			return nil, refuse("zip entry %q is a %s, not a file: a package holds files and directories only", f.Name, kind(mode))
		}
		perm := mode.Perm()
		if f.CreatorVersion>>8 != 3 { // not made on Unix: no permission bits were kept
			perm = 0o755
		}
		rc, err := f.Open()
		if err != nil {
			return nil, refuse("zip entry %q: %v", f.Name, err)
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: clean, Mode: int64(perm | 0o400), Size: int64(f.UncompressedSize64), ModTime: f.Modified}
		if err := tw.WriteHeader(hdr); err != nil {
			rc.Close()
			return nil, err
		}
		n, err := io.Copy(tw, rc)
		rc.Close()
		if err != nil || n != hdr.Size {
			return nil, refuse("zip entry %q is damaged: %v", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	}
	return "special file"
}
