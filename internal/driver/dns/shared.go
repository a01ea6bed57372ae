package dns

import (
	"fmt"
	"log/slog"
	"sync"

	mdns "github.com/miekg/dns"
)

// The embedded servers are shared: every dns resource that serves on one
// address answers its name from one server, so that an agent holds one
// listener per address however many groups it answers for (a second
// listener on the address could not bind). The servers that run are kept
// here, by the canonical listen address (Settings.Serve after Prepare),
// with the names each answers and whose they are.

// servers are the shared servers running in this process.
var servers = struct {
	sync.Mutex
	m map[string]*sharedServer
}{m: map[string]*sharedServer{}}

type sharedServer struct {
	srv   *Server
	names map[string]owner // canonical name → the resource that answers it
}

// owner is the resource that answers a name.
type owner struct{ group, resource string }

func (o owner) String() string { return fmt.Sprintf("group %s, resource %s", o.group, o.resource) }

// acquire returns the server on addr, started if none runs there yet, and
// reserves name on it for o. A name already answered on addr is an error,
// whoever answers it: of two resources answering one name, one would
// answer with the other's active site. A server started logs to log.
func acquire(addr, name string, o owner, log *slog.Logger) (*Server, error) {
	name = mdns.CanonicalName(name)
	servers.Lock()
	defer servers.Unlock()
	ss, ok := servers.m[addr]
	if !ok {
		srv, err := Listen(addr, log)
		if err != nil {
			return nil, err
		}
		ss = &sharedServer{srv: srv, names: map[string]owner{}}
		servers.m[addr] = ss
	}
	if prev, taken := ss.names[name]; taken {
		return nil, fmt.Errorf("dns name %s on %s is answered by %s already, so %s cannot answer it there too: give one of them another name or another serve address", name, addr, prev, o)
	}
	ss.names[name] = o
	return ss.srv, nil
}

// release stops answering name on addr for o, and stops the server when
// it answers nothing more. Releasing what o does not hold does nothing: it
// cannot take a name from the resource that acquired it since.
func release(addr, name string, o owner) {
	name = mdns.CanonicalName(name)
	servers.Lock()
	defer servers.Unlock()
	ss, ok := servers.m[addr]
	if !ok || ss.names[name] != o {
		return
	}
	delete(ss.names, name)
	ss.srv.Remove(name)
	if len(ss.names) == 0 {
		// Under the lock, so that the next acquire of addr binds it anew
		// only once this server has let go of it.
		ss.srv.Close()
		delete(servers.m, addr)
	}
}
