// Command stability runs the lab in network namespaces (root only) for a
// while with a lossy link between the two sites and the machine loaded by
// busy processes, and counts what must not happen: failovers, self-fences,
// sites declared lost, moments when both databases accepted writes, and
// acknowledged writes lost. It reports the longest gap between
// acknowledged writes and the load average it ran under. Figures go to
// bench/RESULTS.md (section stability).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/siteflip/siteflip/bench/harness"
	"github.com/siteflip/siteflip/internal/chaos"
	"github.com/siteflip/siteflip/internal/status"
)

func main() {
	d := flag.Duration("for", 5*time.Minute, "how long the loss and the load last")
	loss := flag.Int("loss", 30, "percentage of packets lost between the two sites")
	load := flag.Int("load", 10, "busy processes started (each adds about 1 to the load average)")
	exe := flag.String("siteflip", "bin/siteflip", "siteflip binary the lab runs")
	dir := flag.String("dir", "/tmp/siteflip-bench-stability", "lab directory (must not exist)")
	out := flag.String("out", "bench/RESULTS.md", "results file; the stability section is replaced")
	flag.Parse()
	if err := run(*d, *loss, *load, *exe, *dir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "stability:", err)
		os.Exit(1)
	}
}

type result struct {
	d                        time.Duration
	loss, busy               int
	loads                    []float64
	runs, lostBy, lost       int
	selfFences               map[string]int
	acks, failed, lostW, two int
	gap                      time.Duration
}

func run(d time.Duration, loss, busy int, exe, dir, out string) error {
	exe, err := filepath.Abs(exe)
	if err != nil {
		return err
	}
	ctx := context.Background()
	e, err := chaos.Start(ctx, chaos.Options{Exe: exe, Dir: dir, Out: os.Stdout})
	if err != nil {
		return err
	}
	defer e.Close()
	if _, err := harness.WaitProtected(ctx, e.Client); err != nil {
		return err
	}
	before, err := e.Client.Runs(ctx, "webshop")
	if err != nil {
		return err
	}
	stop, err := burn(busy)
	if err != nil {
		return err
	}
	defer stop()
	if err := e.Net.Loss("brussels", "antwerp", loss); err != nil {
		return err
	}
	r := result{d: d, loss: loss, busy: busy, selfFences: map[string]int{}}
	event := time.Now()
	fmt.Printf("%d%% loss between brussels and antwerp and %d busy processes for %s\n", loss, busy, d)
	for end := event.Add(d); time.Now().Before(end); {
		time.Sleep(2 * time.Second)
		r.loads = append(r.loads, harness.Load())
		if st, err := e.Client.Status(ctx); err == nil {
			for _, s := range st.Sites {
				if s.Lost {
					r.lost++
				}
				if len(s.LostBy) > 0 {
					r.lostBy++
					fmt.Printf("%s: %s marked lost by %v\n", time.Now().Format("15:04:05"), s.Name, s.LostBy)
				}
			}
		}
		if len(r.loads)%15 == 0 {
			fmt.Printf("%s: load %.1f, %d writes acknowledged\n", time.Now().Format("15:04:05"), r.loads[len(r.loads)-1], len(e.Writer.Acks()))
		}
	}
	stop()
	if err := e.Net.Heal("brussels", "antwerp"); err != nil {
		return err
	}
	after, err := e.Client.Runs(ctx, "webshop")
	if err != nil {
		return err
	}
	r.runs = len(after) - len(before)
	for _, site := range []string{"brussels", "antwerp"} {
		r.selfFences[site] = e.SelfFences(site)
	}
	e.StopTraffic()
	acks := e.Writer.Acks()
	present, err := e.Present(ctx)
	if err != nil {
		return err
	}
	r.acks, r.failed = len(acks), e.Writer.Failed()
	r.lostW = len(chaos.Lost(acks, present))
	r.two = len(chaos.TwoWritable(e.Probe.Samples()))
	r.gap = chaos.LongestGap(acks, event)
	if st, err := e.Client.Status(ctx); err == nil && len(st.Groups) > 0 && st.Groups[0].State != status.StateProtected {
		fmt.Printf("after the heal the group is %s: %v\n", st.Groups[0].State, st.Groups[0].Problems)
	}
	fmt.Printf("runs %d, self-fences %v, samples with a site marked lost %d, writes %d acknowledged (%d failed attempts), %d lost, both writable %d, longest gap %s, load %s\n",
		r.runs, r.selfFences, r.lostBy, r.acks, r.failed, r.lostW, r.two, r.gap.Round(time.Millisecond), harness.Loads(r.loads))
	return write(out, r)
}

// burn starts n busy processes; stop kills them.
func burn(n int) (stop func(), err error) {
	var cmds []*exec.Cmd
	stop = func() {
		for _, c := range cmds {
			if c.Process != nil {
				_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
				_ = c.Wait()
			}
		}
		cmds = nil
	}
	for range n {
		c := exec.Command("sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("start a busy process: %w", err)
		}
		cmds = append(cmds, c)
	}
	return stop, nil
}

func write(path string, r result) error {
	var b strings.Builder
	b.WriteString("## Stability under loss and load (`go run ./bench/stability`, root)\n\n")
	fmt.Fprintf(&b, "Lab in network namespaces on one machine (%s), defaults (serve_lease 400ms, fence_margin 250ms), the writer and probe of `bench/failover`. For %s, %d%% of the packets between brussels and antwerp are dropped (nftables) and %d busy processes load the machine. Nothing may happen: the witness still grants both sites their lease.\n\n",
		harness.Machine(), r.d, r.loss, r.busy)
	b.WriteString("| measure | value | target |\n| --- | --- | --- |\n")
	fmt.Fprintf(&b, "| load average (1 min), sampled every 2 s | %s | ≥ 10 |\n", harness.Loads(r.loads))
	fmt.Fprintf(&b, "| runs started (failovers) | %d | 0 |\n", r.runs)
	fmt.Fprintf(&b, "| self-fences | brussels %d, antwerp %d | 0 |\n", r.selfFences["brussels"], r.selfFences["antwerp"])
	fmt.Fprintf(&b, "| status samples (every 2 s) with a site declared lost (marked by every other location) | %d | 0 |\n", r.lost)
	fmt.Fprintf(&b, "| status samples with a site marked by one location only (the other site: harmless, not lost) | %d | – |\n", r.lostBy)
	fmt.Fprintf(&b, "| moments both databases accepted writes (50 ms probe) | %d | 0 |\n", r.two)
	fmt.Fprintf(&b, "| writes acknowledged / lost | %d / %d | – / 0 |\n", r.acks, r.lostW)
	fmt.Fprintf(&b, "| longest gap between acknowledged writes | %s | |\n", r.gap.Round(time.Millisecond))
	return harness.WriteSection(path, "stability", b.String())
}
