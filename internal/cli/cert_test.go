package cli

import (
	"bytes"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siteflip/siteflip/internal/pki"
)

// TestCertHandshake makes a CA and two locations with siteflip cert, then
// has one location's server and the other's client complete a mutual-TLS
// handshake with pki.ServerConfig and pki.ClientConfig over loopback,
// verifying each other's certificate, the server by its IP SAN; an
// operator's client-only certificate is accepted as a client too.
func TestCertHandshake(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	t.Setenv("SITEFLIP_CONFIG", "")
	run := func(args ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := Main(args, strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("siteflip %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
	}
	run("cert", "init", "--dir", dir)
	run("cert", "site", "brussels", "--address", "127.0.0.1", "--dir", dir)
	run("cert", "site", "antwerp", "--address", "127.0.0.1", "--dir", dir)
	run("cert", "operator", "ada", "--role", "viewer", "--dir", dir)
	files := func(name string) pki.Files {
		return pki.Files{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	}

	server, err := pki.ServerConfig(files("brussels"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan string)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(peers)
				return
			}
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err != nil {
				peers <- "error: " + err.Error()
			} else {
				peers <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			}
			c.Close()
		}
	}()

	for _, client := range []string{"antwerp", "ada"} {
		cfg, err := pki.ClientConfig(files(client), "")
		if err != nil {
			t.Fatal(err)
		}
		// Dialled by IP, as agents dial one another: the server's
		// certificate must carry the address as an IP SAN.
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("%s dials brussels: %v", client, err)
		}
		if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "brussels" {
			t.Errorf("%s sees server %q, want brussels", client, got)
		}
		if got := <-peers; got != client {
			t.Errorf("brussels sees client %q, want %s", got, client)
		}
		c.Close()
	}

	// A server address that is not in the certificate is refused.
	cfg, err := pki.ClientConfig(files("antwerp"), "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tls.Dial("tcp", ln.Addr().String(), cfg); err == nil {
		c.Close()
		t.Error("a client expecting 127.0.0.2 accepted brussels's certificate for 127.0.0.1")
	} else if !strings.Contains(err.Error(), "127.0.0.2") {
		t.Errorf("wrong address: %v", err)
	}
	<-peers // the server's side of the refused handshake

	// An operator's certificate cannot serve a location's client: it has
	// neither server usage nor the address.
	opServer, err := pki.ServerConfig(files("ada"))
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := tls.Listen("tcp", "127.0.0.1:0", opServer)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	go func() {
		if c, err := ln2.Accept(); err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	cfg, err = pki.ClientConfig(files("antwerp"), "")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tls.Dial("tcp", ln2.Addr().String(), cfg); err == nil {
		c.Close()
		t.Error("a client accepted an operator's client-only certificate as a server")
	}
}
