// Package browser owns the headless Chromium that tests drive pages in:
// finding it, starting it with a clean profile, and saving screenshots. It
// lives apart from package testbed, which imports the standard library
// only, so that only the tests that open a page link the DevTools client.
package browser

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Options says how to start the browser.
type Options struct {
	// Width and Height are the window's size; 0 means 1280×800.
	Width, Height int
	// CAs are certificate authorities the browser trusts for servers, as
	// a person who imported the installation's CA would: they go into the
	// profile's certificate store with NSS's certutil (Debian's
	// libnss3-tools), which the test then needs.
	CAs []*x509.Certificate
	// Trust lists certificates whose public keys the browser accepts where
	// their chains do not verify, when a server presents one of them: a
	// test server's own certificate. Chromium honours this only with a
	// profile of its own, which Start always gives it.
	Trust []*x509.Certificate
	// IgnoreCertErrors accepts any certificate. Prefer Trust.
	IgnoreCertErrors bool
}

// Browser is a running headless Chromium with one tab.
type Browser struct {
	// Ctx runs actions in the tab (chromedp.Run, chromedp.Do).
	Ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	// done: the test has ended, and must not be logged to any more.
	done bool
}

// Path is the Chromium binary tests use: $CHROMIUM, else the first of the
// usual names on PATH and in /usr/bin; "" when there is none.
func Path() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Start starts a headless Chromium for the test and stops it at its end.
// Without Chromium the test skips, saying how to install it, unless
// $SITEFLIP_REQUIRE_BROWSER=1, when it fails: CI must not pass a browser
// test that could not run.
func Start(tb testing.TB, o Options) *Browser {
	tb.Helper()
	path := Path()
	if path == "" {
		msg := "no Chromium: install Debian's chromium package (scripts/deps.sh does) or set $CHROMIUM to a Chrome binary"
		if os.Getenv("SITEFLIP_REQUIRE_BROWSER") == "1" {
			tb.Fatal(msg + " ($SITEFLIP_REQUIRE_BROWSER=1)")
		}
		tb.Skip(msg)
	}
	if o.Width == 0 || o.Height == 0 {
		o.Width, o.Height = 1280, 800
	}
	profile := tb.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(o.Width, o.Height),
		// HOME too: Chromium keeps its certificate store there.
		chromedp.Env("HOME=" + profile),
	}
	if len(o.CAs) > 0 {
		trustCAs(tb, profile, o.CAs)
	}
	if len(o.Trust) > 0 {
		var pins []string
		for _, c := range o.Trust {
			sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
			pins = append(pins, base64.StdEncoding.EncodeToString(sum[:]))
		}
		opts = append(opts, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(pins, ",")))
	}
	if o.IgnoreCertErrors {
		opts = append(opts, chromedp.Flag("ignore-certificate-errors", true))
	}
	// Not the test's context: it ends before the cleanups run, and the
	// browser must be gone before its profile directory is removed.
	b := &Browser{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(b.logf(tb)))
	b.Ctx = ctx
	tb.Cleanup(func() {
		b.mu.Lock()
		b.done = true
		b.mu.Unlock()
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start %s: %v", path, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			if !b.done {
				tb.Logf("browser console: %s", m)
			}
			b.mu.Unlock()
		}
	}()
	return b
}

// trustCAs puts cas into the NSS certificate store that Chromium reads
// under $HOME (set to the profile), trusted to identify servers.
func trustCAs(tb testing.TB, home string, cas []*x509.Certificate) {
	tb.Helper()
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		msg := "no certutil to make the browser trust a CA: install Debian's libnss3-tools (scripts/deps.sh does)"
		if os.Getenv("SITEFLIP_REQUIRE_BROWSER") == "1" {
			tb.Fatal(msg + " ($SITEFLIP_REQUIRE_BROWSER=1)")
		}
		tb.Skip(msg)
	}
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		tb.Fatal(err)
	}
	run := func(args ...string) {
		if out, err := exec.Command(certutil, append([]string{"-d", "sql:" + db}, args...)...).CombinedOutput(); err != nil {
			tb.Fatalf("certutil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("-N", "--empty-password")
	for i, ca := range cas {
		pemFile := filepath.Join(home, fmt.Sprintf("ca%d.pem", i))
		if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
			tb.Fatal(err)
		}
		run("-A", "-t", "C,,", "-n", fmt.Sprintf("ca%d %s", i, ca.Subject.CommonName), "-i", pemFile)
	}
}

// logf logs to the test while it runs.
func (b *Browser) logf(tb testing.TB) func(string, ...any) {
	return func(format string, args ...any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.done {
			tb.Logf(format, args...)
		}
	}
}

// Console is what the page wrote to the console so far: its calls of the
// console API, its uncaught exceptions and the browser's log (refused
// loads, Content-Security-Policy violations).
func (b *Browser) Console() []chromedp.ConsoleMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), b.console...)
}

// Screenshot saves what the tab shows as $SITEFLIP_SCREENSHOTS/NAME.png,
// when that variable names a directory; otherwise it does nothing.
func Screenshot(tb testing.TB, ctx context.Context, name string) {
	tb.Helper()
	dir := os.Getenv("SITEFLIP_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.Errorf("screenshot %s: %v", name, err)
		return
	}
	tb.Logf("screenshot: %s", p)
}

// Wait polls cond, a JavaScript expression, until it is true, and fails
// the test after timeout, saying what it waited for and what the page
// showed.
func (b *Browser) Wait(tb testing.TB, timeout time.Duration, what, cond string) {
	tb.Helper()
	if _, err := chromedp.Run(b.Ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(25*time.Millisecond))); err != nil {
		page, _ := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`location.href + '\n' + document.body.innerText.slice(0, 3000)`))
		tb.Fatalf("waiting %s for %s (%s): %v\npage: %s", timeout, what, cond, err, page)
	}
}

// Eval is the string a JavaScript expression gives in the page.
func (b *Browser) Eval(tb testing.TB, expr string) string {
	tb.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		tb.Fatalf("%s: %v", expr, err)
	}
	return v
}

// Do runs actions in the tab, and fails the test on an error.
func (b *Browser) Do(tb testing.TB, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		tb.Fatal(err)
	}
}
