package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"scorekeeper"
	"scorekeeper/mockapi"
)

// The chaos suite: the real system under one fault at a time, each run
// checked for violations of the invariants (design §8) rather than failing
// at the first: summaries against the mock's ground truth, the store's
// reconciliation, quarantine, the upstream budget (the mock's record), and
// payouts against the provider's own ledger (each paid at most once, every
// payout ended as the provider decided, paidOut equal to what it paid).
//
// `make chaos` (CHAOS=full) runs every scenario and prints the table; by
// default (`make test`) the short form runs: the scenarios marked short.
// CHAOS=off skips the suite. E2E_SEED fixes the random choices (kill
// times, fault counts); every run logs the seed it used.

// chaosRow is one line of the table.
type chaosRow struct {
	scenario     string
	transactions int
	payouts      int
	faults       string
	violations   []string
}

// chaosScenario is one fault, run on a fresh world.
type chaosScenario struct {
	name  string
	short bool // part of `make test`'s short form
	run   func(t *testing.T, rng *rand.Rand) chaosRow
}

func TestChaos(t *testing.T) {
	full := false
	switch mode := os.Getenv("CHAOS"); mode {
	case "", "short":
	case "full":
		full = true
	case "off":
		t.Skip("CHAOS=off")
	default:
		t.Fatalf("CHAOS=%q: want short (the default), full or off", mode)
	}
	seed := testSeed(t)
	var rows []chaosRow
	for i, sc := range chaosScenarios() {
		if !full && !sc.short {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			row := sc.run(t, rand.New(rand.NewPCG(seed, uint64(i))))
			row.scenario = sc.name
			rows = append(rows, row)
			for _, v := range row.violations {
				t.Errorf("violation: %s", v)
			}
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| scenario | transactions | payouts | faults injected | violations |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %d |\n", r.scenario, r.transactions, r.payouts, r.faults, len(r.violations))
	}
	t.Log(b.String())
	if full {
		fmt.Print(b.String())
	}
}

func chaosScenarios() []chaosScenario {
	return []chaosScenario{
		{"worker SIGKILL during sync", false, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, nil)
			kills := killRepeatedly(t, w.env, rng, 3, 2*time.Second, 5*time.Second)
			return w.chaosCheck(t, fmt.Sprintf("%d SIGKILLs", kills), 6*time.Minute)
		}},
		{"worker SIGKILL during payouts", false, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := payoutWorld(t)
			kills := killRepeatedly(t, w.env, rng, 4, 3*time.Second, 6*time.Second)
			return w.chaosCheck(t, fmt.Sprintf("%d SIGKILLs", kills), 6*time.Minute)
		}},
		{"two workers, one killed", true, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, func(c *mockConfig) { c.PayoutFailRate = 0.1 })
			a := startProc(t, "worker-a", "worker", w.env)
			startProc(t, "worker-b", "worker", w.env)
			time.Sleep(time.Duration(3000+rng.IntN(4000)) * time.Millisecond)
			a.kill()
			return w.chaosCheck(t, "1 SIGKILL of 2 workers", 6*time.Minute)
		}},
		{"Postgres restarted mid-batch", false, func(t *testing.T, rng *rand.Rand) chaosRow {
			pg := startCluster(t)
			w := newWorldTB(t, 300, 13400, nil, pg.url(t))
			startProc(t, "worker", "worker", w.env)
			for i := range 2 {
				time.Sleep(time.Duration(3000+rng.IntN(4000)) * time.Millisecond)
				pg.restart(t)
				t.Logf("restarted Postgres %d", i+1)
			}
			return w.chaosCheck(t, "2 immediate restarts", 6*time.Minute)
		}},
		{"worker-database network cut and latency", false, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, nil)
			px := startProxy(t, w.env["DATABASE_URL"])
			env := maps(w.env, map[string]string{"DATABASE_URL": px.url(w.env["DATABASE_URL"])})
			startProc(t, "worker", "worker", env)
			px.latency.Store(int64(40 * time.Millisecond))
			for range 2 {
				time.Sleep(time.Duration(3000+rng.IntN(3000)) * time.Millisecond)
				px.cut(5 * time.Second)
			}
			px.latency.Store(0)
			return w.chaosCheck(t, "40 ms latency, 2 cuts of 5 s", 6*time.Minute)
		}},
		{"Temporal restarted on its state file", false, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, nil)
			srv := restartableTemporalServer(t)
			env := maps(w.env, map[string]string{"TEMPORAL_ADDRESS": srv.hostPort})
			startProc(t, "worker", "worker", env)
			time.Sleep(time.Duration(4000+rng.IntN(4000)) * time.Millisecond)
			srv.restart(t, 3*time.Second)
			return w.chaosCheck(t, "1 kill and restart", 6*time.Minute)
		}},
		{"provider answers lost after paying", true, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, nil)
			n := 60 + rng.IntN(40)
			require.NoError(t, w.mock.InjectFault(mockapi.Fault{Target: mockapi.FaultPayouts, AfterPay: true, Status: http.StatusServiceUnavailable, Count: n}))
			startProc(t, "worker", "worker", w.env)
			row := w.chaosCheck(t, fmt.Sprintf("%d answers lost", n), 6*time.Minute)
			if r := w.mock.Stats().Payouts.Replayed; r == 0 {
				row.violations = append(row.violations, "no payout was replayed: the lost answers were never retried")
			}
			return row
		}},
		{"truncated pages", true, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, nil)
			n := 3 + rng.IntN(4)
			require.NoError(t, w.mock.InjectFault(mockapi.Fault{Truncate: true, Count: n}))
			startProc(t, "worker", "worker", w.env)
			return w.chaosCheck(t, fmt.Sprintf("%d pages cut mid-body", n), 6*time.Minute)
		}},
		{"429 storm and 5xx", true, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, nil)
			n := 10 + rng.IntN(10)
			require.NoError(t, w.mock.InjectFault(mockapi.Fault{Status: http.StatusTooManyRequests, Count: n}))
			require.NoError(t, w.mock.InjectFault(mockapi.Fault{Status: http.StatusBadGateway, Count: 3}))
			// Longer than UPSTREAM_TIMEOUT (5s here): the request times out.
			require.NoError(t, w.mock.InjectFault(mockapi.Fault{Delay: 7 * time.Second, Count: 2}))
			startProc(t, "worker", "worker", w.env)
			row := w.chaosCheck(t, fmt.Sprintf("%d 429s, 3 502s, 2 timeouts", n), 6*time.Minute)
			// The injected 429s are the mock's answers, not budget
			// overruns: what must hold is the record of requests received.
			return row
		}},
	}
}

// killRepeatedly runs a worker and SIGKILLs it n times at random moments
// between min and max apart, restarting it each time.
func killRepeatedly(t *testing.T, env map[string]string, rng *rand.Rand, n int, min, max time.Duration) int {
	p := startProc(t, "worker-0", "worker", env)
	for i := 1; i <= n; i++ {
		time.Sleep(min + time.Duration(rng.Int64N(int64(max-min))))
		p.kill()
		p = startProc(t, fmt.Sprintf("worker-%d", i), "worker", env)
	}
	return n
}

// chaosCheck waits for the system to settle (every summary exact, no
// payout pending) and lists every violation of the invariants.
func (w *world) chaosCheck(t *testing.T, faults string, timeout time.Duration) chaosRow {
	t.Helper()
	ctx := context.Background()
	row := chaosRow{faults: faults, transactions: w.mock.ValidCount()}
	for _, tx := range w.mock.Transactions() {
		if tx.Type == scorekeeper.TxPayout {
			row.payouts++
		}
	}
	last := ""
	deadline := time.Now().Add(timeout)
	for {
		if last = w.summariesOff(ctx); last == "" {
			last = w.payoutsPending(ctx)
		}
		if last == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if last != "" {
		row.violations = append(row.violations, "did not settle within "+timeout.String()+": "+last)
		return row
	}
	row.violations = append(w.storeViolations(ctx), w.payoutViolations(ctx)...)
	return row
}

func maps(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// pgCluster is a Postgres server of the test's own, which it may restart
// without disturbing the shared one other tests use.
type pgCluster struct {
	bin, dir, port string
}

func startCluster(t *testing.T) *pgCluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Skip("no Postgres server binaries (initdb) on this machine")
	}
	u, err := user.Lookup("postgres")
	require.NoError(t, err, "the postgres system user runs the test's own cluster")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "scorekeeper-pg")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chown(dir, uid, gid))
	t.Cleanup(func() { os.RemoveAll(dir) })
	_, port, _ := net.SplitHostPort(freeAddr(t))
	pg := &pgCluster{bin: filepath.Dir(bins[0]), dir: dir, port: port}
	pg.run(t, "initdb", "-D", dir+"/data", "-A", "trust", "-U", "postgres", "--no-sync")
	pg.ctl(t, "start")
	t.Cleanup(func() { _ = pg.cmd("pg_ctl", "-D", dir+"/data", "-m", "immediate", "stop").Run() })
	return pg
}

func (pg *pgCluster) cmd(name string, args ...string) *exec.Cmd {
	full := append([]string{"-u", "postgres", "--", filepath.Join(pg.bin, name)}, args...)
	return exec.Command("runuser", full...)
}

func (pg *pgCluster) run(t *testing.T, name string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	c := pg.cmd(name, args...)
	c.Stdout, c.Stderr = &out, &out
	require.NoError(t, c.Run(), "%s: %s", name, out.String())
}

func (pg *pgCluster) ctl(t *testing.T, action string) {
	t.Helper()
	opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c fsync=off", pg.port, pg.dir)
	args := []string{"-D", pg.dir + "/data", "-o", opts, "-l", pg.dir + "/log", "-w", action}
	if action != "start" {
		args = append([]string{"-m", "immediate"}, args...)
	}
	pg.run(t, "pg_ctl", args...)
}

// restart stops the server at once (in-flight transactions are lost, as
// in a crash) and starts it again.
func (pg *pgCluster) restart(t *testing.T) {
	pg.ctl(t, "stop")
	time.Sleep(time.Second)
	pg.ctl(t, "start")
}

// url creates a database on the cluster and returns its URL.
func (pg *pgCluster) url(t *testing.T) string {
	t.Helper()
	pg.run(t, "createdb", "-h", "127.0.0.1", "-p", pg.port, "-U", "postgres", "scorekeeper")
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/scorekeeper?sslmode=disable", pg.port)
}

// proxy is a TCP proxy between the worker and the database that can add
// latency and cut every connection.
type proxy struct {
	ln      net.Listener
	target  string
	latency atomic.Int64 // per chunk, nanoseconds
	down    atomic.Bool
	mu      sync.Mutex
	conns   map[net.Conn]bool
}

func startProxy(t *testing.T, dsn string) *proxy {
	t.Helper()
	u := strings.SplitN(strings.SplitN(dsn, "@", 2)[1], "/", 2)[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: u, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	go p.serve()
	return p
}

// url is dsn through the proxy.
func (p *proxy) url(dsn string) string {
	return strings.Replace(dsn, p.target, p.ln.Addr().String(), 1)
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.down.Load() {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c, up)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = true
	}
}

func (p *proxy) pipe(from, to net.Conn) {
	defer from.Close()
	defer to.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if d := time.Duration(p.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// cut drops every connection and refuses new ones for d.
func (p *proxy) cut(d time.Duration) {
	p.down.Store(true)
	p.closeAll()
	time.Sleep(d)
	p.down.Store(false)
}

// restartableTemporal is a dev server on a fixed port and state file, so
// it can be killed and started again where it was.
type restartableTemporal struct {
	hostPort, dbFile string
	srv              *testsuite.DevServer
}

func restartableTemporalServer(t *testing.T) *restartableTemporal {
	r := &restartableTemporal{hostPort: freeAddr(t), dbFile: filepath.Join(t.TempDir(), "temporal.db")}
	r.start(t)
	t.Cleanup(func() {
		if r.srv != nil {
			_ = r.srv.Stop()
		}
	})
	return r
}

func (r *restartableTemporal) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  temporalCLI(t),
		ClientOptions: &client.Options{HostPort: r.hostPort, Namespace: "default"},
		DBFilename:    r.dbFile,
		LogLevel:      "error",
		ExtraArgs: []string{
			"--search-attribute", "UserId=Keyword",
			"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
			"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
		},
	})
	require.NoError(t, err)
	r.srv = srv
}

// restart stops the server, waits down, and starts it on the same state.
func (r *restartableTemporal) restart(t *testing.T, down time.Duration) {
	require.NoError(t, r.srv.Stop())
	r.srv = nil
	time.Sleep(down)
	r.start(t)
}
