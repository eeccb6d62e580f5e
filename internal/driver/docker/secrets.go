package docker

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SecretsPath is where containers find their secrets, as on OpenFaaS.
const SecretsPath = "/var/openfaas/secrets"

// writeSecrets puts an instance's secrets in a host directory that is
// bind-mounted read-only at SecretsPath. Files are mode 0400 owned by the
// container's user when it is numeric, else 0444 in a directory only root
// and that user can list.
func (d *Driver) writeSecrets(id, user string, secrets map[string][]byte) (string, error) {
	dir := filepath.Join(d.secretsRoot, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", err
	}
	uid, gid, numeric := numericUser(user)
	mode := os.FileMode(0o444)
	if numeric {
		mode = 0o400
	}
	for name, v := range secrets {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, v, mode); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("write secret %s: %w", name, err)
		}
		if numeric {
			os.Chown(p, uid, gid)
		}
	}
	if numeric {
		os.Chown(dir, uid, gid)
		return dir, os.Chmod(dir, 0o500)
	}
	return dir, os.Chmod(dir, 0o555)
}

// numericUser reads "uid[:gid]".
func numericUser(user string) (int, int, bool) {
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil {
		return 0, 0, false
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil {
			return 0, 0, false
		}
	}
	return uid, gid, true
}
