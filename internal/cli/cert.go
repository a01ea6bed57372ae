package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/driver"
	"github.com/siteflip/siteflip/internal/pki"
)

// newCertCmd is siteflip cert: the installation's certificate authority
// and the certificates of its locations and operators (docs/certificates.md).
func newCertCmd(e *env) *cobra.Command {
	var dir string
	root := &cobra.Command{
		Use:   "cert",
		Short: "make and renew the installation's certificates: a CA, one per location, one per operator",
		Long: `cert makes the certificates siteflip's mutual TLS needs, with a CA whose key
stays in --dir on the machine that made it. Copy only ca.crt, and each
location's own NAME.crt and NAME.key, to that location (docs/certificates.md).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			return &exitError{code: exitUsage, err: fmt.Errorf("give a subcommand: init, site, operator, renew or list (siteflip cert --help)")}
		},
	}
	root.PersistentFlags().StringVar(&dir, "dir", ".", "`DIR` that holds ca.crt, ca.key and the certificates")
	root.PersistentFlags().StringVar(&e.config, "config", e.config, "topology `FILE` whose locations' addresses and access: section are used (default $SITEFLIP_CONFIG, else ./siteflip.yaml if present)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: exitUsage, err: err} })
	root.AddCommand(newCertInitCmd(e, &dir), newCertSiteCmd(e, &dir), newCertOperatorCmd(e, &dir), newCertRenewCmd(e, &dir), newCertListCmd(e, &dir))
	return root
}

// usageArgs makes an argument count error exit with the usage code.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("%w (usage: siteflip %s)", err, strings.TrimPrefix(c.UseLine(), "siteflip "))}
		}
		return nil
	}
}

func newCertInitCmd(e *env, dir *string) *cobra.Command {
	var (
		name string
		days int
	)
	c := &cobra.Command{
		Use:   "init",
		Short: "make a new CA: DIR/ca.crt (0644) and DIR/ca.key (0600)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			ca, err := pki.InitCA(*dir, name, days, time.Now())
			if err != nil {
				return certError(err)
			}
			fmt.Fprintf(e.stdout, "wrote %s (the CA's certificate) and %s (its key, 0600), valid until %s\n",
				filepath.Join(*dir, pki.CACertFile), filepath.Join(*dir, pki.CAKeyFile), ca.Cert.NotAfter.UTC().Format(time.DateOnly))
			fmt.Fprintf(e.stdout, "keep %s on this machine, offline if you can: whoever holds it can issue certificates every location trusts.\n", pki.CAKeyFile)
			fmt.Fprintf(e.stdout, "copy only %s to every location and operator; next: siteflip cert site NAME --dir %s\n", pki.CACertFile, *dir)
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "siteflip CA", "the CA's common `NAME`")
	c.Flags().IntVar(&days, "days", pki.DefaultCADays, "validity in `DAYS`")
	return c
}

func newCertSiteCmd(e *env, dir *string) *cobra.Command {
	var (
		addrs, dns []string
		days       int
	)
	c := &cobra.Command{
		Use:   "site NAME",
		Short: "make DIR/NAME.crt and DIR/NAME.key for a location (site or witness): server and client, IP SANs = its addresses",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if err := pki.CheckLocationName(name); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			t, err := e.certTopology()
			if err != nil {
				return err
			}
			hosts, from, err := siteHosts(t, name, addrs)
			if err != nil {
				return err
			}
			l := pki.Leaf{Name: name, Kind: pki.KindLocation, Days: days, DNS: slices.Clone(dns)}
			for _, h := range hosts {
				if ip := net.ParseIP(h); ip != nil {
					l.IPs = append(l.IPs, ip)
				} else if !slices.Contains(l.DNS, h) {
					l.DNS = append(l.DNS, h)
				}
			}
			ca, err := pki.LoadAuthority(*dir)
			if err != nil {
				return err
			}
			is, err := ca.Issue(l, time.Now())
			if err != nil {
				return certError(err)
			}
			if is.Note != "" {
				fmt.Fprintln(e.stderr, "note:", is.Note)
			}
			fmt.Fprintf(e.stdout, "wrote %s and %s (0600) for location %s: %s, valid until %s\n",
				is.CertPath, is.KeyPath, name, sanText(is.Cert.IPAddresses, is.Cert.DNSNames), is.Cert.NotAfter.UTC().Format(time.DateOnly))
			if from != "" {
				fmt.Fprintf(e.stdout, "addresses from %s\n", from)
			}
			fmt.Fprintf(e.stdout, "copy %s, %s and %s to %s, and name them there in sites[].tls (cert_file, key_file) and tls.ca_file\n",
				filepath.Base(is.CertPath), filepath.Base(is.KeyPath), pki.CACertFile, name)
			return nil
		},
	}
	c.Flags().StringArrayVar(&addrs, "address", nil, "an `IP` address of the location (repeatable; default: the hosts of its agent and etcd addresses in the topology)")
	c.Flags().StringArrayVar(&dns, "dns", nil, "a DNS `NAME` of the location (repeatable)")
	c.Flags().IntVar(&days, "days", pki.DefaultLeafDays, "validity in `DAYS` (at most the CA's)")
	return c
}

// siteHosts returns the hosts a location's certificate must name: the
// topology's when it has the location (a given --address must be one of
// them), else the given addresses. from says which topology was used.
func siteHosts(t *config.Topology, name string, addrs []string) (hosts []string, from string, err error) {
	for _, a := range addrs {
		if net.ParseIP(a) == nil {
			return nil, "", &exitError{code: exitUsage, err: fmt.Errorf("--address %q is not an IP address (give DNS names with --dns)", a)}
		}
	}
	if t == nil {
		if len(addrs) == 0 {
			return nil, "", &exitError{code: exitUsage, err: fmt.Errorf("no address for %s: give --address IP (the host of its agent and etcd URLs), or --config with a topology that has %s", name, name)}
		}
		return addrs, "", nil
	}
	s, ok := t.Site(name)
	if !ok {
		if len(addrs) == 0 {
			return nil, "", &exitError{code: exitUsage, err: fmt.Errorf("%s has no location %q (locations: %s): add it there first, or give its --address", t.File, name, strings.Join(t.SiteNames(), ", "))}
		}
		return addrs, "", nil
	}
	hosts = t.Hosts(s)
	if len(hosts) == 0 {
		return nil, "", fmt.Errorf("%s: location %s has no usable agent or etcd address to certify; fix the topology (siteflip check) or leave --config out and give --address", t.File, name)
	}
	for _, a := range addrs {
		if !slices.ContainsFunc(hosts, func(h string) bool { ip := net.ParseIP(h); return ip != nil && ip.Equal(net.ParseIP(a)) }) {
			return nil, "", &exitError{code: exitUsage, err: fmt.Errorf("--address %s disagrees with %s, where location %s is at %s; leave --address out, or fix the topology first",
				a, t.File, name, strings.Join(hosts, ", "))}
		}
	}
	return hosts, t.File, nil
}

func newCertOperatorCmd(e *env, dir *string) *cobra.Command {
	var (
		role string
		days int
	)
	c := &cobra.Command{
		Use:   "operator NAME --role viewer|operator|admin",
		Short: "make DIR/NAME.crt and DIR/NAME.key, a client certificate for a person or program; prints the access: line that grants the role",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if err := pki.CheckOperatorName(name); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			if err := pki.CheckRole(role); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			t, err := e.certTopology()
			if err != nil {
				return err
			}
			if t != nil {
				if _, ok := t.Site(name); ok {
					return &exitError{code: exitUsage, err: fmt.Errorf("%q is a location in %s; a person's or program's certificate needs a name of its own (agents would take it for the location)", name, t.File)}
				}
			}
			ca, err := pki.LoadAuthority(*dir)
			if err != nil {
				return err
			}
			is, err := ca.Issue(pki.Leaf{Name: name, Kind: pki.KindOperator, Role: role, Days: days}, time.Now())
			if err != nil {
				return certError(err)
			}
			if is.Note != "" {
				fmt.Fprintln(e.stderr, "note:", is.Note)
			}
			fmt.Fprintf(e.stdout, "wrote %s and %s (0600) for %s, valid until %s\n", is.CertPath, is.KeyPath, name, is.Cert.NotAfter.UTC().Format(time.DateOnly))
			bound, isBound := "", false
			if t != nil {
				bound, isBound = t.RoleOf(name)
			}
			switch {
			case isBound && bound == role:
				fmt.Fprintf(e.stdout, "%s already binds %s to %s under access:\n", t.File, name, role)
			case isBound:
				fmt.Fprintf(e.stderr, "warning: %s binds %s to %s, not %s: the topology decides; change its access: entry to\n  - {identity: %s, role: %s}\n", t.File, name, bound, role, yamlScalar(name), role)
			default:
				fmt.Fprintf(e.stdout, "the role comes from the topology alone: add these lines to it (every location's copy), then restart or reload the agents:\n")
				fmt.Fprintf(e.stdout, "access:\n  - {identity: %s, role: %s}\n", yamlScalar(name), role)
			}
			fmt.Fprintf(e.stdout, "use it with --cert %s --key %s (or $SITEFLIP_CERT, $SITEFLIP_KEY), with %s beside it as tls.ca_file\n", is.CertPath, is.KeyPath, pki.CACertFile)
			return nil
		},
	}
	c.Flags().StringVar(&role, "role", "", "`ROLE` to bind: viewer, operator or admin")
	c.Flags().IntVar(&days, "days", pki.DefaultLeafDays, "validity in `DAYS` (at most the CA's)")
	return c
}

// yamlScalar quotes s when YAML would not read it back as the same string.
func yamlScalar(s string) string {
	if strings.ContainsAny(s, "@:#{}[],&*!|>'\"%`") || strings.ContainsAny(s[:1], "-?.0123456789") {
		b, _ := json.Marshal(s)
		return string(b)
	}
	return s
}

func newCertRenewCmd(e *env, dir *string) *cobra.Command {
	var days int
	c := &cobra.Command{
		Use:   "renew NAME",
		Short: "issue DIR/NAME.crt again with a new key, the same name, addresses and usage; the old pair is kept as NAME.crt.old, NAME.key.old",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			ca, err := pki.LoadAuthority(*dir)
			if err != nil {
				return err
			}
			is, err := ca.Renew(args[0], days, time.Now())
			if err != nil {
				return certError(err)
			}
			if is.Note != "" {
				fmt.Fprintln(e.stderr, "note:", is.Note)
			}
			fmt.Fprintf(e.stdout, "wrote %s and %s (0600), valid until %s; the old ones are %s.old and %s.old\n",
				is.CertPath, is.KeyPath, is.Cert.NotAfter.UTC().Format(time.DateOnly), filepath.Base(is.CertPath), filepath.Base(is.KeyPath))
			fmt.Fprintf(e.stdout, "copy both to where the old ones are used, then restart that agent (or the program using them)\n")
			return nil
		},
	}
	c.Flags().IntVar(&days, "days", pki.DefaultLeafDays, "validity in `DAYS` (at most the CA's)")
	return c
}

func newCertListCmd(e *env, dir *string) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"show"},
		Short:   "every certificate in DIR: name, kind, role hint, SANs, usage, expiry",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return &exitError{code: exitUsage, err: fmt.Errorf("-o %q: use text or json", output)}
			}
			list, err := pki.List(*dir, time.Now())
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Certificates []pki.Info `json:"certificates"`
				}{list})
			}
			if len(list) == 0 {
				fmt.Fprintf(e.stdout, "no certificates (*.crt) in %s\n", *dir)
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "FILE\tNAME\tKIND\tROLE\tSANS\tUSAGE\tEXPIRES\tDAYS LEFT\tKEY")
			for _, in := range list {
				if in.Problem != "" {
					fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t%s\n", in.File, in.Problem)
					continue
				}
				key := "-"
				if in.HasKey {
					key = "yes"
				}
				sans := strings.Join(append(slices.Clone(in.IPs), in.DNS...), ",")
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", in.File, in.Name, in.Kind, dash(in.Role), dash(sans),
					dash(strings.Join(in.Usage, "+")), in.NotAfter.Format(time.DateOnly), in.DaysLeft, key)
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "`FORMAT`: text or json")
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sanText(ips []net.IP, dns []string) string {
	var s []string
	for _, ip := range ips {
		s = append(s, "IP "+ip.String())
	}
	for _, d := range dns {
		s = append(s, "DNS "+d)
	}
	return strings.Join(s, ", ")
}

// certError gives a refusal to replace a file the failure exit code, and
// bad input the usage code.
func certError(err error) error {
	if errors.Is(err, pki.ErrExists) {
		return &exitError{code: exitFailed, err: err}
	}
	return err
}

// certTopology reads the topology for siteflip cert, or returns nil when
// none was named and the default file does not exist. Its problems do not
// matter here (the certificates may be made before it is complete): only
// the locations' addresses and the access: section are read.
func (e *env) certTopology() (*config.Topology, error) {
	path := e.configPath()
	explicit := e.config != "" || os.Getenv("SITEFLIP_CONFIG") != ""
	if _, err := os.Stat(path); !explicit && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	t, _, err := config.Check(path, driver.Types())
	if err != nil {
		return nil, err
	}
	return t, nil
}
