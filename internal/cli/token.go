package cli

import (
	"crypto"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/siteflip/siteflip/internal/access"
	"github.com/siteflip/siteflip/internal/jsonview"
	"github.com/siteflip/siteflip/internal/pki"
)

// newTokenCmd is `siteflip token`: a login token for the dashboard, signed
// with the caller's own credential (docs/dashboard.md).
func newTokenCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "token [--role viewer|operator|admin] [--ttl 8h] [-o text|json]",
		Short: "a login token for the dashboard, and a link to each location's",
		Long: `token makes a login token for the dashboard in a browser, signed with your
own credential (--cert/--key, else operator: in the topology). It grants at
most --role, and never more than access: grants your certificate's name
when it is used; it expires after --ttl (at most 24h). Anyone who holds it
can act as you until then: keep it, and the links, as you would a password.`,
		Args: noArgs,
	}
	role := c.Flags().String("role", "viewer", "the `ROLE` the token grants at most: viewer, operator or admin")
	ttl := c.Flags().Duration("ttl", 8*time.Hour, "how long the token lasts, at most 24h (`DURATION`)")
	output := outputFlag(c.Flags(), "text", "json")
	c.RunE = func(*cobra.Command, []string) error { return runToken(e, *role, *ttl, *output, time.Now()) }
	return c
}

func runToken(e *env, roleName string, ttl time.Duration, output string, now time.Time) error {
	if err := checkOutput(output, "text", "json"); err != nil {
		return err
	}
	role, ok := access.ParseRole(roleName)
	if !ok {
		return usageErrorf("--role %q: use viewer, operator or admin", roleName)
	}
	if ttl <= 0 || ttl > access.MaxTokenLifetime {
		return usageErrorf("--ttl %s: give a duration above 0 and at most 24h", ttl)
	}
	t, err := e.load()
	if err != nil {
		return err
	}
	if !t.TLSEnabled() {
		return fmt.Errorf("%s runs without TLS (no tls.ca_file): the agents know nobody, so there is nothing to sign in to; the dashboard reads without a token", t.File)
	}
	cred := t.Operator
	if cred.CertFile == "" || cred.KeyFile == "" {
		return usageErrorf("no credential to sign the token with: give --cert and --key (or $SITEFLIP_CERT, $SITEFLIP_KEY), or operator.cert_file and operator.key_file in %s", t.File)
	}
	pair, err := pki.LoadKeyPair(cred.CertFile, cred.KeyFile)
	if err != nil {
		return err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("private key %s cannot sign", cred.KeyFile)
	}
	cn := pair.Leaf.Subject.CommonName
	if slices.Contains(t.SiteNames(), cn) {
		return refusedErrorf("%s is the certificate of location %s; locations' certificates cannot make tokens: use your own (siteflip cert operator NAME, then --cert and --key)", cred.CertFile, cn)
	}
	granted, bound := t.RoleOf(cn)
	if !bound {
		return refusedErrorf("%q (%s) is bound to no role under access: in %s; add `- {identity: %s, role: %s}` there, or use another credential", cn, cred.CertFile, t.File, cn, roleName)
	}
	if g, _ := access.ParseRole(granted); role > g {
		return refusedErrorf("--role %s: access: in %s grants %q only %s; ask for %s or less", roleName, t.File, cn, granted, granted)
	}
	// A token does not outlive the certificate it carries.
	if left := pair.Leaf.NotAfter.Sub(now); left < ttl {
		if left <= 0 {
			return fmt.Errorf("certificate %s expired on %s; renew it (siteflip cert renew %s)", cred.CertFile, pair.Leaf.NotAfter.UTC().Format(time.DateOnly), cn)
		}
		ttl = left.Truncate(time.Second)
		fmt.Fprintf(e.stderr, "note: %s expires at %s; the token ends with it\n", cred.CertFile, pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	tok, err := access.Mint(t.Name, pair.Leaf, signer, role, ttl, now)
	if err != nil {
		return err
	}
	// Check it as an agent will: the certificate must chain to the CA.
	pool, err := pki.CAPool(t.TLS.CAFile)
	if err != nil {
		return err
	}
	_, _, exp, err := access.Verify(tok, pool, t.Name, now)
	if err != nil {
		return fmt.Errorf("the agents would refuse this token: %w", err)
	}
	var links []jsonview.TokenLink
	for _, s := range t.Sites {
		links = append(links, jsonview.TokenLink{Site: s.Name, URL: "https://" + s.Agent.Address + "/#token=" + tok})
	}
	if output == "json" {
		return jsonview.Write(e.stdout, jsonview.TokenOf(tok, roleName, cn, exp, links))
	}
	fmt.Fprintf(e.stdout, "token for %s as %s, until %s:\n\n%s\n\n", cn, roleName, exp.UTC().Format(time.RFC3339), tok)
	fmt.Fprintln(e.stdout, "open the dashboard with it (whoever holds a link can act as you until then):")
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, l := range links {
		fmt.Fprintf(tw, "  %s\t%s\n", l.Site, l.URL)
	}
	return tw.Flush()
}
