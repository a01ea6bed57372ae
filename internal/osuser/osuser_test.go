package osuser

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Giving a file to its own user works and keeps it theirs; a user whose
// ids are not numbers is refused with its name.
func TestGive(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Give(me, f); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != me.Uid {
		t.Errorf("owner %d, want %s", uid, me.Uid)
	}
	bad := &user.User{Username: "nobody-here", Uid: "x", Gid: "0"}
	if err := Give(bad, f); err == nil || err.Error() != `user nobody-here: uid "x": strconv.Atoi: parsing "x": invalid syntax` {
		t.Errorf("a user with a bad uid: %v", err)
	}
}
