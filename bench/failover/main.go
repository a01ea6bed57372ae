// Command failover measures automatic failover in a lab whose locations
// live in network namespaces (root only), with a writer that gives every
// write a unique id (200 writes/s through the VIP) and a probe that asks
// both databases every 50 ms whether they accept writes:
//
//   - N power cuts at the active site: time from the cut to the first write
//     acknowledged at the other site (RTO), through the service address the
//     active site announces to the lab's router; every other one with the
//     controller at the site that loses power, the others with it at the
//     witness (it is moved there first by restarting the agent that holds
//     it);
//   - M cuts of the active site from the other site and the witness while
//     the writer still reaches it: time from the cut until it stops
//     acknowledging writes, time until the other site acknowledges, and the
//     writes acknowledged by the cut-off site that were lost.
//
// After each trial the old site comes back and is reprotected, so the next
// trial fails over the other way. Figures go to bench/RESULTS.md (section
// failover).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/siteflip/siteflip/bench/harness"
	"github.com/siteflip/siteflip/internal/api"
	"github.com/siteflip/siteflip/internal/chaos"
	"github.com/siteflip/siteflip/internal/config"
	"github.com/siteflip/siteflip/internal/lab"
	"github.com/siteflip/siteflip/internal/netns"
	"github.com/siteflip/siteflip/internal/plan"
	"github.com/siteflip/siteflip/internal/status"
)

func main() {
	kills := flag.Int("kills", 20, "power cuts at the active site")
	switchovers := flag.Int("switchovers", 0, "switchovers, before the power cuts: the longest pause in acknowledged writes each causes")
	db := flag.String("db", "postgres", "the lab's group: webshop on postgres, or news on mariadb")
	cuts := flag.Int("cuts", 10, "cuts of the active site from the others")
	sites := flag.Int("sites", 2, "the lab's sites: 2 (and a witness), or 3 (no witness; power cuts only, the controller wherever it is; section failover-3-sites)")
	exe := flag.String("siteflip", "bin/siteflip", "siteflip binary the lab runs")
	dir := flag.String("dir", "/tmp/siteflip-bench-failover", "lab directory (must not exist)")
	out := flag.String("out", "bench/RESULTS.md", "results file; the failover section (failover-mariadb with -db mariadb) is replaced")
	flag.Parse()
	if *db != "postgres" && *db != "mariadb" {
		fmt.Fprintf(os.Stderr, "failover: -db %q: use postgres or mariadb\n", *db)
		os.Exit(2)
	}
	if *sites != 2 && (*sites != 3 || *db != "postgres") {
		fmt.Fprintf(os.Stderr, "failover: -sites %d: use 2, or 3 with -db postgres\n", *sites)
		os.Exit(2)
	}
	if err := run(*kills, *cuts, *switchovers, *sites, *db == "mariadb", *exe, *dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

type result struct {
	rtos, rtosController    []time.Duration      // kill → first write at the other site (controller elsewhere; at the killed site)
	loads                   map[string][]float64 // load average at each trial, by measure
	stops, takeovers        []time.Duration      // cut → last write at the cut-off site; cut → first at the other
	killLost, cutLost, both int
	counted                 map[int64]bool  // lost writes already counted in a trial
	gaps                    []time.Duration // longest pause in acknowledged writes in each switchover
	switchLost              int
	mariadb                 bool
	sites                   int
}

func run(kills, cuts, switchovers, sites int, mariadb bool, exe, dir, out string) error {
	exe, err := filepath.Abs(exe)
	if err != nil {
		return err
	}
	ctx := context.Background()
	// Failing over again and again is the point here: no flap damping.
	e, err := chaos.Start(ctx, chaos.Options{Exe: exe, Dir: dir, Out: os.Stdout, FlapPeriod: time.Second, MariaDB: mariadb, Sites: sites})
	if err != nil {
		return err
	}
	defer e.Close()
	r := result{counted: map[int64]bool{}, loads: map[string][]float64{}, mariadb: mariadb, sites: sites}
	if sites == 3 {
		// Without a witness there is nowhere to park the controller and
		// the raft leadership: power cuts only, wherever they are.
		switchovers, cuts = 0, 0
	}
	for i := 0; i < switchovers; i++ {
		if err := switchTrial(ctx, e, &r, i); err != nil {
			return fmt.Errorf("switchover %d: %w (the lab's logs: %s)", i+1, err, harness.KeepLogs(dir))
		}
	}
	for i := 0; i < kills; i++ {
		if err := killTrial(ctx, e, &r, i); err != nil {
			return fmt.Errorf("power cut %d: %w (the lab's logs: %s)", i+1, err, harness.KeepLogs(dir))
		}
	}
	for i := 0; i < cuts; i++ {
		if err := cutTrial(ctx, e, &r, i); err != nil {
			return fmt.Errorf("cut %d: %w (the lab's logs: %s)", i+1, err, harness.KeepLogs(dir))
		}
	}
	e.StopTraffic()
	r.both = len(chaos.TwoWritable(e.Probe.Samples()))
	return write(out, r)
}

func other(site string) string {
	if site == "brussels" {
		return "antwerp"
	}
	return "brussels"
}

// waitAck waits for the first write acknowledged after t by a server other
// than not.
func waitAck(e *chaos.Env, t time.Time, not string) (chaos.Ack, error) {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if a, ok := chaos.FirstAckAfter(e.Writer.Acks(), t, not); ok {
			return a, nil
		}
	}
	return chaos.Ack{}, fmt.Errorf("no write acknowledged at the other site within a minute")
}

func killTrial(ctx context.Context, e *chaos.Env, r *result, i int) error {
	g, err := harness.WaitProtected(ctx, e.Client)
	if err != nil {
		return err
	}
	victim := g.ActiveSite
	st, err := e.Client.Status(ctx)
	if err != nil {
		return err
	}
	// Every other trial with the controller at the site that loses power,
	// the others with it at the witness (three sites: where it is).
	if r.sites != 3 {
		place := victim
		if i%2 == 0 {
			place = witnessOf(st)
		}
		if err := placeController(ctx, e, place); err != nil {
			return err
		}
		if err := waitSettled(ctx, e); err != nil {
			return err
		}
	}
	st, err = e.Client.Status(ctx)
	if err != nil {
		return err
	}
	atController := st.Controller == victim
	load := harness.Load()
	cut := time.Now()
	if err := lab.Disaster(e.Lab, victim); err != nil {
		return err
	}
	first, err := waitAck(e, cut, victim)
	if err != nil {
		return err
	}
	rto := first.At.Sub(cut)
	if atController {
		r.rtosController = append(r.rtosController, rto)
		r.loads["kill-controller"] = append(r.loads["kill-controller"], load)
	} else {
		r.rtos = append(r.rtos, rto)
		r.loads["kill"] = append(r.loads["kill"], load)
	}
	to := other(victim)
	if r.sites == 3 {
		to = "" // the most advanced standby
	}
	if err := harness.BackAndReprotect(ctx, e.Client, e.Group, victim, to, func() error { return lab.Heal(ctx, e.Lab, victim) }); err != nil {
		return err
	}
	lost, err := lostSince(ctx, e, cut, r.counted)
	if err != nil {
		return err
	}
	r.killLost += lost
	fmt.Printf("power cut %2d at %-8s controller there %-5v RTO %.3fs  acknowledged writes lost %d  load %.1f\n", i+1, victim, atController, rto.Seconds(), lost, load)
	return nil
}

func cutTrial(ctx context.Context, e *chaos.Env, r *result, i int) error {
	g, err := harness.WaitProtected(ctx, e.Client)
	if err != nil {
		return err
	}
	victim := g.ActiveSite
	if err := waitSettled(ctx, e); err != nil {
		return err
	}
	load := harness.Load()
	r.loads["cut"] = append(r.loads["cut"], load)
	cut := time.Now()
	if err := e.Net.Isolate(victim, netns.Host, "router"); err != nil {
		return err
	}
	first, err := waitAck(e, cut, victim)
	if err != nil {
		return err
	}
	stop := time.Duration(0)
	if last, ok := chaos.LastAckBy(e.Writer.Acks(), victim); ok && last.At.After(cut) {
		stop = last.At.Sub(cut)
	}
	takeover := first.At.Sub(cut)
	r.stops, r.takeovers = append(r.stops, stop), append(r.takeovers, takeover)
	if err := harness.BackAndReprotect(ctx, e.Client, e.Group, victim, other(victim), e.Net.HealAll); err != nil {
		return err
	}
	lost, err := lostSince(ctx, e, cut, r.counted)
	if err != nil {
		return err
	}
	r.cutLost += lost
	fmt.Printf("cut       %2d at %-8s stops acknowledging %.3fs  other site acknowledges %.3fs  acknowledged writes lost %d  load %.1f\n",
		i+1, victim, stop.Seconds(), takeover.Seconds(), lost, load)
	return nil
}

// switchTrial switches the group over to the other site with the writer
// running: the longest pause in acknowledged writes around it, and the
// acknowledged writes lost (none may be).
func switchTrial(ctx context.Context, e *chaos.Env, r *result, i int) error {
	g, err := harness.WaitProtected(ctx, e.Client)
	if err != nil {
		return err
	}
	load := harness.Load()
	r.loads["switchover"] = append(r.loads["switchover"], load)
	began := time.Now()
	run, err := harness.Run(ctx, e.Client, api.RunRequest{Group: e.Group, Action: plan.Switchover, To: other(g.ActiveSite)})
	if err != nil {
		return err
	}
	if _, err := waitAck(e, run.Ended, g.ActiveSite); err != nil {
		return err
	}
	// A second of writes after the first at the new site, so that the
	// gap is closed on both sides.
	time.Sleep(time.Second)
	gap := chaos.LongestGap(e.Writer.Acks(), began)
	r.gaps = append(r.gaps, gap)
	lost, err := lostSince(ctx, e, began, r.counted)
	if err != nil {
		return err
	}
	r.switchLost += lost
	if lost > 0 {
		for j, st := range run.Plan.Steps {
			fmt.Printf("  step %-24s %s – %s\n", st.ID, run.Steps[j].Started.Format("15:04:05.000"), run.Steps[j].Ended.Format("15:04:05.000"))
		}
	}
	fmt.Printf("switchover %2d to %-8s run %.3fs  longest pause in acknowledged writes %.3fs  acknowledged writes lost %d  load %.1f\n",
		i+1, other(g.ActiveSite), run.Ended.Sub(run.Started).Seconds(), gap.Seconds(), lost, load)
	return nil
}

// lostSince counts the writes acknowledged since t-10s that the current
// primary does not have and that no earlier trial counted.
func lostSince(ctx context.Context, e *chaos.Env, t time.Time, counted map[int64]bool) (int, error) {
	// The acknowledgements first: each was committed before the read of
	// the ids begins, so it must be there (read the other way round, a
	// write acknowledged while the ids were read looks lost).
	acks := e.Writer.Acks()
	present, err := e.Present(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range chaos.Lost(acks, present) {
		if a.At.After(t.Add(-10*time.Second)) && !counted[a.ID] {
			counted[a.ID] = true
			n++
			fmt.Printf("  lost: write %d acknowledged at %s by %s\n", a.ID, a.At.Format("15:04:05.000"), a.Server)
		}
	}
	return n, nil
}

func write(path string, r result) error {
	var b strings.Builder
	section, title, client := "failover", "## Automatic failover (`go run ./bench/failover`, root)\n\n", "through the service address (VIP) that the active site announces to the lab's FRR router over BGP"
	if r.mariadb {
		section, title = "failover-mariadb", "## MariaDB: switchover and automatic failover (`go run ./bench/failover -db mariadb -switchovers 20`, root)\n\n"
		client = "at whichever server accepts writes (the news group on MariaDB, GTID replication, no VIP: the client tries the sites in turn and takes the first not read-only)"
	}
	if r.sites == 3 {
		return writeThreeSites(path, r)
	}
	b.WriteString(title)
	fmt.Fprintf(&b, "Lab in network namespaces on one machine (%s), defaults (serve_lease 400ms, fence_margin 250ms); a writer inserts unique ids at 200/s %s, and connects with a 250 ms timeout, retrying at once; a probe asks both databases every 50 ms whether they accept writes. Each trial fails over the other way after the old site came back and was reprotected, and starts once the raft leadership is at the witness. Every other power cut hits the site that holds the controller, the others are made with the controller at the witness (it is moved by restarting the agent that holds it, as an operator would). Load is the 1-minute load average when each trial began (median, max).\n\n", harness.Machine(), client)
	b.WriteString("| measure | n | median | max | acknowledged writes lost | load | target |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	if len(r.gaps) > 0 {
		m, x := harness.Stats(r.gaps)
		fmt.Fprintf(&b, "| switchover with the writer running → longest pause in acknowledged writes | %d | %.3fs | %.3fs | %d | %s | ≤ 0.2 s, 0 lost |\n", len(r.gaps), m.Seconds(), x.Seconds(), r.switchLost, harness.Loads(r.loads["switchover"]))
	}
	m, x := harness.Stats(r.rtos)
	fmt.Fprintf(&b, "| power cut at the active site, controller elsewhere → first write acknowledged at the other (RTO) | %d | %s | %s | | %s | ≤ 1.5 s median, ≤ 2 s worst |\n", len(r.rtos), harness.Figure(m, len(r.rtos)), harness.Figure(x, len(r.rtos)), harness.Loads(r.loads["kill"]))
	m, x = harness.Stats(r.rtosController)
	fmt.Fprintf(&b, "| power cut at the active site that holds the controller → first write at the other | %d | %s | %s | | %s | ≤ 1.5 s median, ≤ 2 s worst |\n", len(r.rtosController), harness.Figure(m, len(r.rtosController)), harness.Figure(x, len(r.rtosController)), harness.Loads(r.loads["kill-controller"]))
	fmt.Fprintf(&b, "| all power cuts | %d | | | %d | | |\n", len(r.rtos)+len(r.rtosController), r.killLost)
	m, x = harness.Stats(r.stops)
	fmt.Fprintf(&b, "| active site cut off, clients still reach it: cut → its last acknowledged write | %d | %.3fs | %.3fs | %d | %s | ≤ 0.5 s |\n", len(r.stops), m.Seconds(), x.Seconds(), r.cutLost, harness.Loads(r.loads["cut"]))
	m, x = harness.Stats(r.takeovers)
	fmt.Fprintf(&b, "| same cut → first write acknowledged at the other site | %d | %.3fs | %.3fs | | %s | ≤ 1.5 s median, ≤ 2 s worst |\n", len(r.takeovers), m.Seconds(), x.Seconds(), harness.Loads(r.loads["cut"]))
	fmt.Fprintf(&b, "\nMoments when both databases accepted writes (50 ms probe): %d. ", r.both)
	b.WriteString("Writes lost are those the cut-off or killed primary acknowledged and had not replicated (asynchronous replication, within max_data_loss 5s); in synchronous mode the chaos suite's isolation scenario loses none.\n")
	return harness.WriteSection(path, section, b.String())
}

// witnessOf is the witness of st's installation.
func witnessOf(st status.Status) string {
	for _, s := range st.Sites {
		if s.Role == config.RoleWitness {
			return s.Name
		}
	}
	return ""
}

// waitSettled waits until the raft leadership is where the agents put it,
// at the witness: a site's agent hands it over at once while the witness
// answers, but only 3 s after the witness came back from a loss (and
// restarting its agent to move the controller is one).
func waitSettled(ctx context.Context, e *chaos.Env) error {
	st, err := e.Client.Status(ctx)
	if err != nil {
		return err
	}
	// As the witness's own view says: after its agent restarted, the
	// others' views may still name it from before.
	w := witnessOf(st)
	if _, err := e.WaitStatus(ctx, 30*time.Second, func(st status.Status) bool {
		s, _ := st.Site(w)
		return s.Reporting && s.RaftLeader == w
	}); err != nil {
		return fmt.Errorf("the raft leadership did not go to the witness %s: %w", w, err)
	}
	return nil
}

// placeController moves the controller to site: it restarts the agent
// that holds it, as an operator would (it resigns; its database keeps
// serving), until the election lands at site.
func placeController(ctx context.Context, e *chaos.Env, site string) error {
	for range 8 {
		st, err := e.WaitStatus(ctx, 60*time.Second, func(st status.Status) bool { return st.Controller != "" })
		if err != nil {
			return fmt.Errorf("no controller: %w", err)
		}
		if st.Controller == site {
			_, err := harness.WaitProtected(ctx, e.Client)
			return err
		}
		holder, term := st.Controller, st.ControllerTerm
		if err := lab.RestartAgent(e.Lab, holder); err != nil {
			return err
		}
		// A new election, and the restarted agent back.
		if _, err := e.WaitStatus(ctx, 60*time.Second, func(st status.Status) bool {
			s, _ := st.Site(holder)
			return st.Controller != "" && st.ControllerTerm != term && s.Up && s.Reporting
		}); err != nil {
			return fmt.Errorf("after restarting the agent of %s: %w", holder, err)
		}
	}
	return fmt.Errorf("the controller never landed at %s", site)
}

// writeThreeSites writes the power cuts of a lab of three sites.
func writeThreeSites(path string, r result) error {
	var b strings.Builder
	b.WriteString("## Automatic failover with three sites (`go run ./bench/failover -sites 3 -kills 20`, root)\n\n")
	fmt.Fprintf(&b, "Lab in network namespaces on one machine (%s), defaults (serve_lease 400ms, fence_margin 250ms), three sites (brussels, antwerp, liege) and no witness. A writer inserts unique ids at 200/s through the VIP. At each power cut of the active site, a failover waits until both standbys reported their position after marking the lost site, takes the most advanced, and the third site rejoins the new primary after the checks (not part of the RTO). The old site then comes back and is reprotected. The controller and the raft leadership are wherever the elections put them. Load is the 1-minute load average when each trial began (median, max).\n\n", harness.Machine())
	b.WriteString("| measure | n | median | max | acknowledged writes lost | load | target |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	all := append(append([]time.Duration{}, r.rtos...), r.rtosController...)
	m, x := harness.Stats(all)
	fmt.Fprintf(&b, "| power cut at the active site → first write acknowledged at another (RTO) | %d | %s | %s | %d | %s | ≤ 1.5 s median, ≤ 2 s worst |\n", len(all), harness.Figure(m, len(all)), harness.Figure(x, len(all)), r.killLost, harness.Loads(append(r.loads["kill"], r.loads["kill-controller"]...)))
	m, x = harness.Stats(r.rtosController)
	fmt.Fprintf(&b, "| of which the cut site held the controller | %d | %s | %s | | | |\n", len(r.rtosController), harness.Figure(m, len(r.rtosController)), harness.Figure(x, len(r.rtosController)))
	fmt.Fprintf(&b, "\nMoments when two databases accepted writes (50 ms probe): %d. Writes lost are those the killed primary acknowledged and had not replicated (asynchronous replication, within max_data_loss 5s).\n", r.both)
	return harness.WriteSection(path, "failover-3-sites", b.String())
}
