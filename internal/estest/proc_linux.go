//go:build linux

package estest

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// EnvUser names the user the node runs as when the tests run as root, which
// Elasticsearch refuses; default "nobody".
const EnvUser = "VIGIL_ES_USER"

// nodeUser returns the uid and gid the node runs as, and false when it runs
// as the test's own user (the test is not root).
func nodeUser() (uid, gid uint32, drop bool, err error) {
	if os.Getuid() != 0 {
		return 0, 0, false, nil
	}
	name := os.Getenv(EnvUser)
	if name == "" {
		name = "nobody"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, false, fmt.Errorf("Elasticsearch refuses to run as root and user %q does not exist (set %s): %w", name, EnvUser, err)
	}
	id, err1 := strconv.ParseUint(u.Uid, 10, 32)
	g, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false, fmt.Errorf("user %q has a non-numeric uid or gid", name)
	}
	return uint32(id), uint32(g), true, nil
}

// sysProcAttr puts the node in a process group of its own (stopped as a
// whole), runs it as an unprivileged user when the test is root, and makes
// the kernel kill its launcher if the test binary dies without cleaning up;
// the server process exits when its launcher does.
func sysProcAttr() (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	uid, gid, drop, err := nodeUser()
	if err != nil {
		return nil, err
	}
	if drop {
		attr.Credential = &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}
	}
	return attr, nil
}

// chownForNode gives the node's user the tree under dir.
func chownForNode(dir string) error {
	uid, gid, drop, err := nodeUser()
	if err != nil || !drop {
		return err
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(uid), int(gid))
	})
}
