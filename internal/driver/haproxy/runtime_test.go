package haproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siteflip/siteflip/internal/config"
)

// fakeAPI listens on a TCP port of 127.0.0.1 and answers every command with
// answer(command); an answer of "hang" keeps the connection open without a
// word. It returns the address.
func fakeAPI(t *testing.T, answer func(cmd string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				cmd, _ := bufio.NewReader(conn).ReadString('\n')
				a := answer(strings.TrimSuffix(cmd, "\n"))
				if a == "hang" {
					select {
					case <-done:
					case <-time.After(10 * time.Second):
					}
					return
				}
				io.WriteString(conn, a)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRuntimeAPIFaults(t *testing.T) {
	const dump = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight\n" +
		"3 webshop 1 brussels 127.0.0.1 2 0 1 1\n\n"
	tests := []struct {
		name   string
		answer func(cmd string) string
		call   func(s *Settings) error
		want   error
		msg    []string
	}{
		{
			name:   "no answer",
			answer: func(string) string { return "hang" },
			call:   func(s *Settings) error { _, err := State(t.Context(), s); return err },
			want:   ErrUnreachable,
			msg:    []string{"show servers state webshop", "no answer within the timeout (200ms)"},
		},
		{
			name:   "not HAProxy",
			answer: func(string) string { return "HTTP/1.1 400 Bad Request\r\n\r\n" },
			call:   func(s *Settings) error { _, err := State(t.Context(), s); return err },
			want:   ErrRejected,
			msg:    []string{`HAProxy answered "HTTP/1.1 400 Bad Request`, "check that runtime_api is a stats socket of HAProxy"},
		},
		{
			name:   "closed without an answer",
			answer: func(string) string { return "" },
			call:   func(s *Settings) error { _, err := State(t.Context(), s); return err },
			want:   ErrRejected,
			msg:    []string{"without an answer", "not at the master CLI"},
		},
		{
			name: "unknown command",
			answer: func(string) string {
				return "Unknown command, but maybe one of the following ones is a better match:\n  help\n\n"
			},
			call: func(s *Settings) error { _, err := State(t.Context(), s); return err },
			want: ErrRejected,
			msg:  []string{"does not know the command", "HAProxy 1.8 or newer"},
		},
		{
			name: "accepted but not applied",
			answer: func(cmd string) string {
				if strings.HasPrefix(cmd, "set ") {
					return "\n"
				}
				return dump // brussels stays ready
			},
			call: func(s *Settings) error { _, err := Disable(t.Context(), s); return err },
			want: ErrNotApplied,
			msg:  []string{"set server webshop/brussels state maint", "webshop/brussels ready, running, weight 1 after HAProxy accepted the command"},
		},
		{
			name:   "dump cut short",
			answer: func(string) string { return strings.TrimSuffix(dump, "\n") },
			call:   func(s *Settings) error { _, err := SaveState(t.Context(), s); return err },
			want:   ErrUnreachable,
			msg:    []string{"show servers state", "incomplete"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Settings{RuntimeAPI: fakeAPI(t, tt.answer), Backend: "webshop", StateFile: t.TempDir() + "/server-state"}
			s.SetDefaults("brussels")
			s.Timeout = config.Duration(200 * time.Millisecond)
			err := tt.call(s)
			t.Log(err)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("the error does not say %q:\n%v", m, err)
				}
			}
		})
	}
}
