package haproxy

import (
	"fmt"
	"strconv"
	"strings"
)

// OpState is a server's operational state (srv_op_state).
type OpState int

// Operational states, as HAProxy numbers them.
const (
	OpStopped  OpState = 0 // down: in maintenance or failing its health checks
	OpStarting OpState = 1 // coming up under slowstart
	OpRunning  OpState = 2 // up
	OpStopping OpState = 3 // going down, finishing its sessions
)

func (o OpState) String() string {
	switch o {
	case OpStopped:
		return "stopped"
	case OpStarting:
		return "starting"
	case OpRunning:
		return "running"
	case OpStopping:
		return "stopping"
	}
	return "op-state-" + strconv.Itoa(int(o))
}

// AdminState is a server's administrative state (srv_admin_state): a set of
// flags, none of which are set for a server that is ready.
type AdminState int

// Administrative flags, as HAProxy numbers them.
const (
	AdminForcedMaint    AdminState = 0x01 // set server ... state maint
	AdminInheritedMaint AdminState = 0x02 // a tracked server is in maintenance
	AdminConfigMaint    AdminState = 0x04 // `disabled` in haproxy.cfg; a marker only, see maintMask
	AdminForcedDrain    AdminState = 0x08 // set server ... state drain
	AdminInheritedDrain AdminState = 0x10 // a tracked server is draining
	AdminResolveMaint   AdminState = 0x20 // its address did not resolve
	AdminFQDNSet        AdminState = 0x40 // its FQDN was set at runtime; a marker only

	// maintMask and drainMask are HAProxy's SRV_ADMF_MAINT and
	// SRV_ADMF_DRAIN. A server configured `disabled` keeps
	// AdminConfigMaint after it is made ready: HAProxy uses the flag to
	// tell whether the configuration changed when it loads a state file.
	maintMask = AdminForcedMaint | AdminInheritedMaint | AdminResolveMaint
	drainMask = AdminForcedDrain | AdminInheritedDrain
)

// Maint reports whether the server is in maintenance for any reason: it
// gets no traffic at all.
func (a AdminState) Maint() bool { return a&maintMask != 0 }

// Drain reports whether the server is draining: it gets only the traffic
// that persistence sends to it.
func (a AdminState) Drain() bool { return a&drainMask != 0 }

// Ready reports whether no flag keeps the server from taking traffic.
func (a AdminState) Ready() bool { return a&(maintMask|drainMask) == 0 }

func (a AdminState) String() string {
	if a.Ready() {
		return "ready"
	}
	var parts []string
	for _, f := range []struct {
		flag AdminState
		name string
	}{
		{AdminForcedMaint, "maint"},
		{AdminInheritedMaint, "maint (tracked server)"},
		{AdminResolveMaint, "maint (address not resolved)"},
		{AdminForcedDrain, "drain"},
		{AdminInheritedDrain, "drain (tracked server)"},
	} {
		if a&f.flag != 0 {
			parts = append(parts, f.name)
		}
	}
	return strings.Join(parts, ", ")
}

// ServerState is one server as HAProxy reports it in `show servers state`.
type ServerState struct {
	Backend       string
	Server        string
	Addr          string // srv_addr
	Port          int    // srv_port; 0 when HAProxy reports none
	Op            OpState
	Admin         AdminState
	Weight        int // srv_uweight: the current weight; 0 takes no new traffic
	InitialWeight int // srv_iweight: the weight in haproxy.cfg
	// Checked reports whether HAProxy health-checks the server.
	Checked bool
	// CheckHealth is HAProxy's health-check counter (srv_check_health):
	// the server is up from the check's rise upwards. HAProxy sets it to
	// exactly rise when the server leaves maintenance, before any check
	// has run, and a check that passes then raises it.
	CheckHealth int

	backendID int // be_id: names the backend to `show stat` without doubt
}

// Health-check state flags (srv_check_state).
const (
	checkConfigured = 0x02
	checkEnabled    = 0x04
)

// Serving reports whether HAProxy sends new traffic to the server: it is
// administratively ready, operationally up and its weight is not 0.
func (st ServerState) Serving() bool {
	return st.Admin.Ready() && (st.Op == OpRunning || st.Op == OpStarting) && st.Weight > 0
}

func (st ServerState) String() string {
	return fmt.Sprintf("%s/%s %s, %s, weight %d", st.Backend, st.Server, st.Admin, st.Op, st.Weight)
}

// serversStateVersion is the format of `show servers state` this package
// reads and writes; HAProxy 1.6 to 3.x all use version 1.
const serversStateVersion = "1"

// parseServersState parses the answer to `show servers state [BACKEND]`:
// a version line, a "# "-prefixed header naming the columns, one line per
// server, and a blank line. Columns are found by name, so that a newer
// HAProxy may add some.
func parseServersState(text string) ([]ServerState, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != serversStateVersion || !strings.HasPrefix(lines[1], "# ") {
		return nil, fmt.Errorf("not a version %s server state dump: it starts %q", serversStateVersion, firstLine(text))
	}
	col := map[string]int{}
	for i, name := range strings.Fields(strings.TrimPrefix(lines[1], "# ")) {
		col[name] = i
	}
	for _, name := range []string{"be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight"} {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("server state header lacks column %s: %q", name, lines[1])
		}
	}
	var out []ServerState
	for n, line := range lines[2:] {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < len(col) {
			return nil, fmt.Errorf("server state line %d has %d columns, the header names %d: %q", n+3, len(f), len(col), line)
		}
		num := func(name string) (int, error) {
			v, err := strconv.Atoi(f[col[name]])
			if err != nil {
				return 0, fmt.Errorf("server state line %d: %s %q is not a number", n+3, name, f[col[name]])
			}
			return v, nil
		}
		st := ServerState{Backend: f[col["be_name"]], Server: f[col["srv_name"]], Addr: f[col["srv_addr"]]}
		var err error
		var op, admin int
		if op, err = num("srv_op_state"); err != nil {
			return nil, err
		}
		if admin, err = num("srv_admin_state"); err != nil {
			return nil, err
		}
		if st.Weight, err = num("srv_uweight"); err != nil {
			return nil, err
		}
		if st.InitialWeight, err = num("srv_iweight"); err != nil {
			return nil, err
		}
		st.Op, st.Admin = OpState(op), AdminState(admin)
		if i, ok := col["srv_port"]; ok {
			st.Port, _ = strconv.Atoi(f[i]) // "-" or "0" when there is none
		}
		if i, ok := col["be_id"]; ok {
			st.backendID, _ = strconv.Atoi(f[i])
		}
		if i, ok := col["srv_check_state"]; ok {
			cs, _ := strconv.Atoi(f[i])
			st.Checked = cs&(checkConfigured|checkEnabled) == checkConfigured|checkEnabled
		}
		if i, ok := col["srv_check_health"]; ok {
			st.CheckHealth, _ = strconv.Atoi(f[i])
		}
		out = append(out, st)
	}
	return out, nil
}

// find returns the state of backend/server in states.
func find(states []ServerState, backend, server string) (ServerState, bool) {
	for _, st := range states {
		if st.Backend == backend && st.Server == server {
			return st, true
		}
	}
	return ServerState{}, false
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}
