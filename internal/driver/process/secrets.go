package process

import (
	"fmt"
	"os"
	"path/filepath"
)

// writeSecrets puts each secret in a file of a private directory for one
// instance: the directory mode 0500 and the files 0400, owned by the user the
// function runs as, so nothing else unprivileged can read them.
func (d *Driver) writeSecrets(id string, secrets map[string][]byte) (string, error) {
	dir := filepath.Join(d.pkgs.root, "secrets-"+id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	for name, v := range secrets {
		p := filepath.Join(dir, name) // names are DNS labels: no separators
		if err := os.WriteFile(p, v, 0o400); err != nil {
			removeSecrets(dir)
			return "", fmt.Errorf("write secret %s: %w", name, err)
		}
		if d.cred != nil {
			if err := os.Chown(p, int(d.cred.Uid), int(d.cred.Gid)); err != nil {
				removeSecrets(dir)
				return "", err
			}
		}
	}
	if d.cred != nil {
		if err := os.Chown(dir, int(d.cred.Uid), int(d.cred.Gid)); err != nil {
			removeSecrets(dir)
			return "", err
		}
	}
	return dir, os.Chmod(dir, 0o500)
}

// removeSecrets deletes an instance's secrets directory.
func removeSecrets(dir string) {
	if dir == "" {
		return
	}
	os.Chmod(dir, 0o700)
	os.RemoveAll(dir)
}
