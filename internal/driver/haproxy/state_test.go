package haproxy

import (
	"reflect"
	"strings"
	"testing"
)

// dump26 is HAProxy 2.6's answer to `show servers state`: brussels ready,
// antwerp `disabled` in haproxy.cfg and then made ready at runtime (admin
// state 4 keeps the configuration's mark), and a health-checked server in
// maintenance.
const dump26 = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 webshop 1 brussels 127.0.0.1 2 0 1 1 5 1 0 2 0 0 0 0 - 18081 - 0 0 - - 0
3 webshop 2 antwerp 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 18082 - 0 0 - - 0
4 checked 1 good 127.0.0.1 0 1 1 1 0 6 3 0 14 0 0 0 - 18083 - 0 0 - - 0

`

func TestParseServersState(t *testing.T) {
	got, err := parseServersState(dump26)
	if err != nil {
		t.Fatal(err)
	}
	want := []ServerState{
		{Backend: "webshop", Server: "brussels", Addr: "127.0.0.1", Port: 18081, Op: OpRunning, Admin: 0, Weight: 1, InitialWeight: 1, CheckHealth: 2, backendID: 3},
		{Backend: "webshop", Server: "antwerp", Addr: "127.0.0.1", Port: 18082, Op: OpRunning, Admin: AdminConfigMaint, Weight: 1, InitialWeight: 1, backendID: 3},
		{Backend: "checked", Server: "good", Addr: "127.0.0.1", Port: 18083, Op: OpStopped, Admin: AdminForcedMaint, Weight: 1, InitialWeight: 1, Checked: true, backendID: 4},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseServersState =\n%+v\nwant\n%+v", got, want)
	}
	if !got[0].Serving() || !got[1].Serving() || got[2].Serving() {
		t.Errorf("Serving = %v %v %v; want true true false", got[0].Serving(), got[1].Serving(), got[2].Serving())
	}

	// Columns are found by name: a later HAProxy may reorder or add some.
	reordered := "1\n# srv_name be_name new_col srv_admin_state srv_op_state srv_addr srv_uweight srv_iweight\nbrussels webshop x 1 0 10.0.0.1 0 100\n\n"
	got, err = parseServersState(reordered)
	if err != nil {
		t.Fatal(err)
	}
	want = []ServerState{{Backend: "webshop", Server: "brussels", Addr: "10.0.0.1", Op: OpStopped, Admin: AdminForcedMaint, Weight: 0, InitialWeight: 100}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseServersState of reordered columns = %+v, want %+v", got, want)
	}
}

func TestParseServersStateErrors(t *testing.T) {
	header := "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight"
	tests := []struct {
		name, in, msg string
	}{
		{"empty", "", "not a version 1 server state dump"},
		{"an error answer", "Can't find backend.\n\n", `it starts "Can't find backend."`},
		{"another version", "2\n" + header + "\n", "not a version 1"},
		{"no header", "1\n3 webshop 1 brussels 127.0.0.1 2 0 1 1\n", "not a version 1"},
		{"missing column", "1\n# be_id be_name srv_id srv_name\n", "lacks column srv_addr"},
		{"short line", "1\n" + header + "\n3 webshop 1 brussels\n", "line 3 has 4 columns, the header names 9"},
		{"not a number", "1\n" + header + "\n3 webshop 1 brussels 127.0.0.1 up 0 1 1\n", `srv_op_state "up" is not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServersState(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("parseServersState: %v; want an error saying %q", err, tt.msg)
			}
		})
	}
}

func TestStateStrings(t *testing.T) {
	tests := []struct {
		admin AdminState
		want  string
	}{
		{0, "ready"},
		{AdminConfigMaint, "ready"},
		{AdminForcedMaint | AdminConfigMaint, "maint"},
		{AdminForcedDrain, "drain"},
		{AdminInheritedMaint, "maint (tracked server)"},
		{AdminForcedMaint | AdminResolveMaint, "maint, maint (address not resolved)"},
	}
	for _, tt := range tests {
		if got := tt.admin.String(); got != tt.want {
			t.Errorf("AdminState(%#x).String() = %q, want %q", int(tt.admin), got, tt.want)
		}
	}
	st := ServerState{Backend: "webshop", Server: "antwerp", Op: OpStopped, Admin: AdminForcedMaint, Weight: 1}
	if got, want := st.String(), "webshop/antwerp maint, stopped, weight 1"; got != want {
		t.Errorf("ServerState.String() = %q, want %q", got, want)
	}
}
