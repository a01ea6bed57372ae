package haproxy

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/siteflip/siteflip/internal/config"
)

// Settings is the per-site block of a haproxy resource. The caller decodes
// it strictly from YAML and calls Prepare, which sets defaults, resolves
// relative paths and checks the result.
type Settings struct {
	// RuntimeAPI is where HAProxy's runtime API listens, as written on a
	// `stats socket ... level admin` line of haproxy.cfg: the path of a
	// unix socket (any value with a slash) or host:port for a TCP socket.
	RuntimeAPI string `yaml:"runtime_api"`
	// Backend is the HAProxy backend the group's clients go through.
	Backend string `yaml:"backend"`
	// Server is this site's server in Backend; default: the site name.
	Server string `yaml:"server"`
	// StateFile is the file HAProxy reads runtime state back from when it
	// starts or reloads: the `server-state-file` of haproxy.cfg (with
	// `server-state-base` prepended when that is set). It is a path on
	// the host of the agent that runs the step, which is HAProxy's host.
	StateFile string `yaml:"state_file"`
	// StateScope says what StateFile holds: "global" (default) every
	// backend, for `load-server-state-from-file global`; "local" only
	// Backend, for `load-server-state-from-file local` with a
	// `server-state-file-name` per backend.
	StateScope string `yaml:"state_scope"`
	// Timeout bounds one call: connecting, the commands, and for Enable
	// the wait for the server to come up. Default 5s.
	Timeout config.Duration `yaml:"timeout"`
}

// State scopes.
const (
	ScopeGlobal = "global"
	ScopeLocal  = "local"
)

const (
	defaultTimeout = 5 * time.Second
	// maxSocketPath is sizeof(sockaddr_un.sun_path) on Linux without the NUL.
	maxSocketPath = 107
)

// Prepare sets the defaults of settings (a *Settings) for site, resolves
// relative paths against dir, the configuration file's folder, and returns
// the problems of the result.
func Prepare(settings any, site, dir string) []config.FieldError {
	s := settings.(*Settings)
	s.SetDefaults(site)
	s.Resolve(dir)
	return s.Check()
}

// SetDefaults fills the fields left empty. site is the site this block
// belongs to; it is the default server name.
func (s *Settings) SetDefaults(site string) {
	if s.Server == "" {
		s.Server = site
	}
	if s.StateScope == "" {
		s.StateScope = ScopeGlobal
	}
	if s.Timeout == 0 {
		s.Timeout = config.Duration(defaultTimeout)
	}
}

// Resolve makes a relative state file or unix socket path absolute against
// dir. It leaves TCP addresses and absolute paths alone, and does nothing
// when dir is "".
func (s *Settings) Resolve(dir string) {
	if dir == "" {
		return
	}
	if s.StateFile != "" && !filepath.IsAbs(s.StateFile) {
		s.StateFile = filepath.Join(dir, s.StateFile)
	}
	if s.isUnix() && !hasAddressPrefix(s.RuntimeAPI) && !filepath.IsAbs(s.RuntimeAPI) {
		s.RuntimeAPI = filepath.Join(dir, s.RuntimeAPI)
	}
}

// Check reports every problem with the settings; nil means they are usable.
// Call it after SetDefaults.
func (s *Settings) Check() []config.FieldError {
	var errs []config.FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, config.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}

	api := s.RuntimeAPI
	switch {
	case api == "":
		add("runtime_api", "is required: set it to the unix socket path or host:port of a `stats socket ... level admin` line in haproxy.cfg, e.g. /run/haproxy/admin.sock")
	case strings.HasPrefix(api, "abns@"):
		add("runtime_api", "%q is an abstract socket, which siteflip does not dial: bind the stats socket to a path or a TCP address", api)
	case hasAddressPrefix(api):
		rest := api[strings.IndexByte(api, '@')+1:]
		add("runtime_api", "%q carries HAProxy's address prefix: write %q", api, rest)
	case strings.ContainsAny(api, " \t\r\n"):
		add("runtime_api", "%q must not contain spaces", api)
	case s.isUnix():
		if !filepath.IsAbs(api) {
			add("runtime_api", "unix socket path %q must be absolute", api)
		}
		if len(api) > maxSocketPath {
			add("runtime_api", "unix socket path %q is %d bytes, more than the limit of %d: move the stats socket to a shorter path", api, len(api), maxSocketPath)
		}
	default:
		host, port, err := net.SplitHostPort(api)
		if err != nil {
			add("runtime_api", "%q is neither a unix socket path (it has no slash) nor host:port: set the path of the stats socket, e.g. /run/haproxy/admin.sock, or its address, e.g. 127.0.0.1:9999", api)
			break
		}
		if host == "" {
			add("runtime_api", "%q has no host: write host:port, e.g. 127.0.0.1%s", api, api)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			add("runtime_api", "port %q is not a TCP port from 1 to 65535", port)
		}
	}

	checkName := func(field, name, what string) {
		switch {
		case name == "":
			add(field, "is required: set it to the name of the %s in haproxy.cfg", what)
		case !validName(name):
			add(field, "%q is not an HAProxy name: names hold only letters, digits and - _ . :", name)
		}
	}
	checkName("backend", s.Backend, "backend the group's clients go through")
	checkName("server", s.Server, "site's server in the backend (default: the site name)")

	switch f := s.StateFile; {
	case f == "":
		add("state_file", "is required: set it to the `server-state-file` of haproxy.cfg, e.g. /var/lib/haproxy/server-state; without it a reload of HAProxy undoes a failover")
	case strings.ContainsAny(f, "\r\n"):
		add("state_file", "%q must not contain line breaks", f)
	case !filepath.IsAbs(f):
		add("state_file", "%q must be an absolute path", f)
	case strings.HasSuffix(f, "/"):
		add("state_file", "%q names a folder: name the file itself, as server-state-file does", f)
	}

	if s.StateScope != ScopeGlobal && s.StateScope != ScopeLocal {
		add("state_scope", "%q is not a scope: use global (the file holds every backend, for load-server-state-from-file global) or local (only this backend)", s.StateScope)
	}
	if s.Timeout <= 0 {
		add("timeout", "%s must be positive (default 5s)", time.Duration(s.Timeout))
	}
	return errs
}

// Across checks the settings of every site of one resource together: two
// sites must not name the same server, and sites that share a backend must
// share its state file.
func Across(bySite map[string]any) map[string][]config.FieldError {
	sites := make([]string, 0, len(bySite))
	for site := range bySite {
		sites = append(sites, site)
	}
	sort.Strings(sites)

	type key struct{ api, backend, x string }
	servers := map[key]string{}  // (api, backend, server) → first site
	files := map[key]string{}    // (api, backend) → first site
	backends := map[key]string{} // (api, local state file) → first site
	out := map[string][]config.FieldError{}
	add := func(site, field, format string, args ...any) {
		out[site] = append(out[site], config.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for _, site := range sites {
		s, ok := bySite[site].(*Settings)
		if !ok {
			continue
		}
		api := s.endpointKey()
		if other, dup := servers[key{api, s.Backend, s.Server}]; dup {
			add(site, "server", "%s/%s at %s is also the server of site %s: each site needs its own server (default: the site name)", s.Backend, s.Server, s.RuntimeAPI, other)
		} else {
			servers[key{api, s.Backend, s.Server}] = site
		}
		if other, seen := files[key{api, s.Backend, ""}]; !seen {
			files[key{api, s.Backend, ""}] = site
		} else if o := bySite[other].(*Settings); o.StateFile != s.StateFile {
			add(site, "state_file", "%s differs from %s at site %s, which shares backend %s at %s: one HAProxy reads one state file per backend, so give both sites the same state_file", s.StateFile, o.StateFile, other, s.Backend, s.RuntimeAPI)
		}
		if s.StateScope != ScopeLocal {
			continue
		}
		if other, seen := backends[key{api, s.StateFile, ""}]; !seen {
			backends[key{api, s.StateFile, ""}] = site
		} else if o := bySite[other].(*Settings); o.Backend != s.Backend {
			add(site, "state_file", "%s holds backend %s at site %s: with state_scope local each backend needs its own state file", s.StateFile, o.Backend, other)
		}
	}
	return out
}

// isUnix reports whether RuntimeAPI names a unix socket.
func (s *Settings) isUnix() bool {
	return strings.Contains(s.RuntimeAPI, "/") || strings.HasPrefix(s.RuntimeAPI, "unix@")
}

// endpoint is what net.Dial takes for RuntimeAPI.
func (s *Settings) endpoint() (network, address string) {
	if s.isUnix() {
		return "unix", s.RuntimeAPI
	}
	return "tcp", s.RuntimeAPI
}

// endpointKey identifies one runtime API for Across.
func (s *Settings) endpointKey() string {
	network, addr := s.endpoint()
	if network == "unix" {
		addr = filepath.Clean(addr)
	}
	return network + " " + addr
}

// timeout is Timeout, or the default when it is unset.
func (s *Settings) timeout() time.Duration {
	if s.Timeout <= 0 {
		return defaultTimeout
	}
	return time.Duration(s.Timeout)
}

// hasAddressPrefix reports whether api starts with one of HAProxy's address
// prefixes, which belong in haproxy.cfg and not in a dialled address.
func hasAddressPrefix(api string) bool {
	for _, p := range []string{"unix@", "ipv4@", "ipv6@", "abns@", "fd@", "sockpair@"} {
		if strings.HasPrefix(api, p) {
			return true
		}
	}
	return false
}

// validName reports whether name is a valid HAProxy proxy or server name
// (HAProxy's invalid_char: letters, digits, '-', '_', '.' and ':').
func validName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return name != ""
}
