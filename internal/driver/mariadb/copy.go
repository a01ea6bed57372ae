package mariadb

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/siteflip/siteflip/internal/priority"
)

// A reclone across machines: the agent of the primary's site streams a
// physical copy of its server (mariadb-backup --stream=xbstream) to the
// agent of the site that rejoins, which unpacks it (mbstream) and goes on
// as with a copy made here.

// Source gives a copy of the primary's server as an xbstream. Closing it
// says whether the copy came whole: an error when it did not.
type Source func(ctx context.Context) (io.ReadCloser, error)

// Copy writes a physical copy of the server of in (on this machine) to w,
// as an xbstream, while it serves.
func Copy(ctx context.Context, in Instance, w io.Writer) error {
	for _, bin := range []string{"mariadb-backup"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("copy mariadb at %s: %s is missing (Debian's mariadb-backup package)", in.Settings.Addr(), bin)
		}
	}
	cnf, err := backupOptions(in, in.Settings)
	if err != nil {
		return fmt.Errorf("copy mariadb at %s: %w", in.Settings.Addr(), err)
	}
	defer os.Remove(cnf)
	tmp, err := os.MkdirTemp(in.Dir, "copy-")
	if err != nil {
		return fmt.Errorf("copy mariadb at %s: %w", in.Settings.Addr(), err)
	}
	defer os.RemoveAll(tmp)
	// --defaults-file first: it holds the account and its password.
	cmd := exec.CommandContext(ctx, "mariadb-backup", "--defaults-file="+cnf, "--backup", "--stream=xbstream",
		"--target-dir="+tmp, "--datadir="+in.Settings.DataDir)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := priority.Run(cmd); err != nil {
		return fmt.Errorf("copy mariadb at %s: mariadb-backup --backup --stream: %w: %s", in.Settings.Addr(), err, tail(stderr.Bytes()))
	}
	return nil
}

// unpack writes the copy src gives into dir (which it creates).
func unpack(ctx context.Context, src Source, dir string) error {
	if _, err := exec.LookPath("mbstream"); err != nil {
		return fmt.Errorf("mbstream is missing (Debian's mariadb-backup package): %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	rc, err := src(ctx)
	if err != nil {
		return fmt.Errorf("fetch the copy: %w", err)
	}
	cmd := exec.CommandContext(ctx, "mbstream", "-x", "-C", dir)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = rc, &stderr
	err = priority.Run(cmd)
	if err == nil {
		// mbstream may stop at the stream's last chunk: the rest (nothing,
		// when all is well) is read so that the end is seen.
		_, err = io.Copy(io.Discard, rc)
	}
	// Close says whether the copy came whole, even when mbstream was
	// content with what it got.
	if cerr := rc.Close(); err == nil && cerr != nil {
		return fmt.Errorf("the copy did not come whole: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("mbstream -x: %w: %s", err, tail(stderr.Bytes()))
	}
	return nil
}
