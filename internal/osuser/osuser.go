// Package osuser hands files to the OS users that servers run as (frr,
// mysql): siteflip prepares their directories as root.
package osuser

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// Give makes paths belong to u and its primary group.
func Give(u *user.User, paths ...string) error {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}
