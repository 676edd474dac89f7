package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"scorekeeper"
	"scorekeeper/activities"
	"scorekeeper/db"
	"scorekeeper/mockapi"
)

// The chaos suite: the real system under one fault at a time, each run
// checked for violations of the invariants (design §8) rather than failing
// at the first: summaries against the mock's ground truth, the store's
// reconciliation, quarantine, the upstream budget (the mock's record),
// payouts against the provider's own ledger (each paid at most once, every
// payout ended as the provider decided, paidOut equal to what it paid),
// and every summary as stored and as a web process serves it against the
// truth and the ledger directly. Each scenario also proves its fault took
// effect (the mock's counters, the killed worker's own requests, the
// connections a restart or a cut dropped) and fails when it did not: a
// run whose fault never happened proves nothing.
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
	// evidence is what shows the fault took effect.
	evidence   string
	violations []string
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
	fmt.Fprintf(&b, "\n| scenario | transactions | payouts | faults injected | fault took effect | violations |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %d |\n", r.scenario, r.transactions, r.payouts, r.faults, r.evidence, len(r.violations))
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
			kills := w.killRepeatedly(t, rng, 3, 2*time.Second, 5*time.Second)
			row := w.chaosCheck(t, fmt.Sprintf("%d SIGKILLs", len(kills)), 6*time.Minute)
			row.proveKills(kills, "fetching mid-sync", kill.fetching)
			return row
		}},
		{"worker SIGKILL during payouts", false, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := payoutWorld(t)
			kills := w.killRepeatedly(t, rng, 4, 3*time.Second, 6*time.Second)
			row := w.chaosCheck(t, fmt.Sprintf("%d SIGKILLs", len(kills)), 6*time.Minute)
			row.proveKills(kills, "paying with payouts pending", kill.paying)
			return row
		}},
		{"operator actions during worker SIGKILLs", false, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := payoutWorld(t)
			base := w.startWeb(t)
			acted := make(chan operatorActions, 1)
			actRng := rand.New(rand.NewPCG(rng.Uint64(), 7))
			go func() { acted <- w.actDuringFaults(base, actRng, 25*time.Second) }()
			kills := w.killRepeatedly(t, rng, 4, 3*time.Second, 6*time.Second)
			ops := <-acted
			w.canceled = ops.canceled
			row := w.chaosCheck(t, fmt.Sprintf("%d SIGKILLs; %d holds, %d cancels, %d refused", len(kills), ops.held, len(ops.canceled), ops.refused), 6*time.Minute)
			row.prove(ops.held > 0 && len(ops.canceled) > 0 && len(ops.errs) == 0,
				fmt.Sprintf("%d users held and released, %d payouts canceled, %d cancels refused (sent), errors: %v", ops.held, len(ops.canceled), ops.refused, ops.errs))
			return row
		}},
		{"two workers, one killed", true, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, func(c *mockConfig) { c.PayoutFailRate = 0.1 })
			ta, tb := w.tap(t), w.tap(t)
			a := startProc(t, "worker-a", "worker", ta.env(w.env))
			b := startProc(t, "worker-b", "worker", tb.env(w.env))
			time.Sleep(time.Duration(3000+rng.IntN(4000)) * time.Millisecond)
			// The one killed is the one fetching: whichever sent upstream
			// the last request (waiting for the first if none has yet).
			victim, vt := a, ta
			eventually(t, time.Minute, "a worker to fetch", func() (bool, string) {
				return ta.upstream.Load()+tb.upstream.Load() > 0, "no upstream request yet"
			})
			if tb.last.Load() > ta.last.Load() {
				victim, vt = b, tb
			}
			k := w.killWorker(victim, vt)
			row := w.chaosCheck(t, "1 SIGKILL of 2 workers", 6*time.Minute)
			row.proveKills([]kill{k}, "fetching mid-sync", kill.fetching)
			return row
		}},
		{"Postgres restarted mid-batch", false, func(t *testing.T, rng *rand.Rand) chaosRow {
			pg := startCluster(t)
			w := newWorldTB(t, 300, 13400, nil, pg.url(t))
			startProc(t, "worker", "worker", maps(w.env, map[string]string{"DATABASE_URL": w.env["DATABASE_URL"] + "&application_name=" + chaosWorkerApp}))
			var restarts []string
			dropped, midSync := 0, 0
			for i := range 2 {
				time.Sleep(time.Duration(3000+rng.IntN(4000)) * time.Millisecond)
				at, conns, began := w.progress(), w.workerConns(), w.postmasterStart()
				pg.restart(t)
				t.Logf("restarted Postgres %d", i+1)
				again := w.postmasterStart()
				if conns > 0 && again.After(began) {
					dropped++
				}
				if at.midSync() || at.pending > 0 {
					midSync++
				}
				restarts = append(restarts, fmt.Sprintf("restart %d dropped %d worker connections (server up since %s, then %s) at %s",
					i+1, conns, began.Format(time.TimeOnly), again.Format(time.TimeOnly), at))
			}
			row := w.chaosCheck(t, "2 immediate restarts", 6*time.Minute)
			row.prove(dropped == 2 && midSync > 0, strings.Join(restarts, "; "))
			return row
		}},
		{"worker-database network cut and latency", false, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, nil)
			px := startProxy(t, w.env["DATABASE_URL"])
			env := maps(w.env, map[string]string{"DATABASE_URL": px.url(w.env["DATABASE_URL"])})
			startProc(t, "worker", "worker", env)
			px.latency.Store(int64(40 * time.Millisecond))
			var cuts []string
			cutAll, midSync := true, 0
			for i := range 2 {
				time.Sleep(time.Duration(3000+rng.IntN(3000)) * time.Millisecond)
				at := w.progress()
				n := px.cut(5 * time.Second)
				cutAll = cutAll && n > 0
				if at.midSync() || at.pending > 0 {
					midSync++
				}
				cuts = append(cuts, fmt.Sprintf("cut %d closed %d connections at %s", i+1, n, at))
			}
			px.latency.Store(0)
			row := w.chaosCheck(t, "40 ms latency, 2 cuts of 5 s", 6*time.Minute)
			delayed, refused := px.delayed.Load(), px.refused.Load()
			row.prove(cutAll && midSync > 0 && delayed > 0,
				fmt.Sprintf("%s; %d chunks delayed, %d connections refused while cut", strings.Join(cuts, "; "), delayed, refused))
			return row
		}},
		{"Temporal restarted on its state file", false, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, nil)
			srv := restartableTemporalServer(t)
			env := maps(w.env, map[string]string{"TEMPORAL_ADDRESS": srv.hostPort})
			startProc(t, "worker", "worker", env)
			time.Sleep(time.Duration(4000+rng.IntN(4000)) * time.Millisecond)
			at := w.progress()
			open, err := runningWorkflows(srv.srv.Client())
			srv.restart(t, 3*time.Second)
			kept := 0
			for _, e := range open {
				if _, derr := srv.srv.Client().DescribeWorkflow(context.Background(), e.GetWorkflowId(), e.GetRunId()); derr == nil {
					kept++
				}
			}
			row := w.chaosCheck(t, "1 kill and restart", 6*time.Minute)
			row.prove(err == nil && len(open) > 0 && kept == len(open) && (at.midSync() || at.pending > 0),
				fmt.Sprintf("%d workflows running at the restart (%v), %d found after it, at %s", len(open), err, kept, at))
			return row
		}},
		{"provider answers lost after paying", true, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, nil)
			n := 60 + rng.IntN(40)
			require.NoError(t, w.mock.InjectFault(mockapi.Fault{Target: mockapi.FaultPayouts, AfterPay: true, Status: http.StatusServiceUnavailable, Count: n}))
			startProc(t, "worker", "worker", w.env)
			row := w.chaosCheck(t, fmt.Sprintf("%d answers lost", n), 6*time.Minute)
			// Every payment whose answer was lost must have been asked for
			// again (and replayed, not paid again: checkPayouts).
			lost, replayed := w.mock.PaymentAnswersLost(), w.mock.Stats().Payouts.Replayed
			row.prove(lost > 0 && replayed >= int64(lost),
				fmt.Sprintf("%d payments' answers lost, %d replays", lost, replayed))
			return row
		}},
		{"truncated pages", true, func(t *testing.T, rng *rand.Rand) chaosRow {
			w := newWorldTB(t, 300, 13400, nil)
			n := 3 + rng.IntN(4)
			require.NoError(t, w.mock.InjectFault(mockapi.Fault{Truncate: true, Count: n}))
			startProc(t, "worker", "worker", w.env)
			row := w.chaosCheck(t, fmt.Sprintf("%d pages cut mid-body", n), 6*time.Minute)
			cut := w.mock.TruncatedPages()
			row.prove(cut == n, fmt.Sprintf("%d of %d pages served truncated", cut, n))
			return row
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
			served, timedOut := w.mock.InjectedStatuses(), w.mock.AbandonedRequests()
			row.prove(served[http.StatusTooManyRequests] == n && served[http.StatusBadGateway] == 3 && timedOut == 2,
				fmt.Sprintf("served %d injected 429s, %d 502s; %d requests timed out", served[http.StatusTooManyRequests], served[http.StatusBadGateway], timedOut))
			return row
		}},
	}
}

// prove records the evidence that a scenario's fault took effect, and a
// violation when it did not (ok false): a run whose fault never happened
// proves nothing about it.
func (r *chaosRow) prove(ok bool, evidence string) {
	r.evidence = evidence
	if !ok {
		r.violations = append(r.violations, "the fault did not take effect: "+evidence)
	}
}

// proveKills requires at least one of the kills to have hit a worker in
// the state the scenario is about (hit).
func (r *chaosRow) proveKills(kills []kill, what string, hit func(kill) bool) {
	var ks []string
	n := 0
	for _, k := range kills {
		if hit(k) {
			n++
		}
		ks = append(ks, k.String())
	}
	r.prove(n > 0, fmt.Sprintf("%d of %d SIGKILLs hit a worker %s: %s", n, len(kills), what, strings.Join(ks, "; ")))
}

// tap is a worker process's own door to the mock (its UPSTREAM_URL and
// PAYOUT_URL), counting what that process asked, so the suite knows what
// a worker it killed was doing.
type tap struct {
	url               string
	upstream, payouts atomic.Int64
	last              atomic.Int64 // when its last upstream request came, Unix ns
}

func (w *world) tap(t *testing.T) *tap {
	t.Helper()
	tp := &tap{}
	hs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/transactions":
			tp.upstream.Add(1)
			tp.last.Store(time.Now().UnixNano())
		case "/payouts":
			tp.payouts.Add(1)
		}
		w.mock.ServeHTTP(rw, r)
	}))
	t.Cleanup(hs.Close)
	tp.url = hs.URL
	return tp
}

// env is base with the tap as upstream and provider.
func (tp *tap) env(base map[string]string) map[string]string {
	return maps(base, map[string]string{"UPSTREAM_URL": tp.url, "PAYOUT_URL": tp.url})
}

// progress is where the work stood at an instant, read from the store.
type progress struct {
	stored, upstream int  // transactions stored, of those upstream shows
	pending          int  // payouts requested, neither paid nor failed
	lease            bool // the fetcher lease held (unexpired)
	err              error
}

func (p progress) midSync() bool { return p.err == nil && p.stored < p.upstream }

func (p progress) String() string {
	if p.err != nil {
		return fmt.Sprintf("(store unreadable: %v)", p.err)
	}
	return fmt.Sprintf("%d of %d transactions stored, %d payouts pending, fetcher lease held %t", p.stored, p.upstream, p.pending, p.lease)
}

func (w *world) progress() progress {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := progress{upstream: w.mock.ValidCount()}
	stored, err := w.db.NewSelect().Table("transactions").Count(ctx)
	if err != nil {
		p.err = err
		return p
	}
	pending, err := w.db.NewSelect().Table("payouts").Where("status = ?", scorekeeper.PayoutRequested).Count(ctx)
	if err != nil {
		p.err = err
		return p
	}
	p.stored, p.pending = int(stored), int(pending)
	_, p.lease, p.err = db.GetLease(ctx, w.db, activities.FetcherLease)
	return p
}

// kill is what a SIGKILLed worker was doing: where the work stood, and
// the requests it had sent upstream and to the provider in its life.
type kill struct {
	name              string
	at                progress
	upstream, payouts int64
}

// fetching: the worker fetched pages (with one worker at a time, or the
// last request among several, it ran the fetcher's activities), the
// fetcher lease was held and transactions were left to sync.
func (k kill) fetching() bool { return k.upstream > 0 && k.at.lease && k.at.midSync() }

// paying: the worker sent payouts and payouts were pending.
func (k kill) paying() bool { return k.payouts > 0 && k.at.pending > 0 }

func (k kill) String() string {
	return fmt.Sprintf("%s after %d upstream requests and %d payout requests, at %s", k.name, k.upstream, k.payouts, k.at)
}

// killWorker SIGKILLs p, which reaches the mock through tp.
func (w *world) killWorker(p *proc, tp *tap) kill {
	at := w.progress()
	p.kill()
	return kill{name: p.name, at: at, upstream: tp.upstream.Load(), payouts: tp.payouts.Load()}
}

// killRepeatedly runs a worker and SIGKILLs it n times at random moments
// between min and max apart, restarting it each time.
func (w *world) killRepeatedly(t *testing.T, rng *rand.Rand, n int, min, max time.Duration) []kill {
	start := func(i int) (*proc, *tap) {
		tp := w.tap(t)
		return startProc(t, fmt.Sprintf("worker-%d", i), "worker", tp.env(w.env)), tp
	}
	p, tp := start(0)
	var kills []kill
	for i := 1; i <= n; i++ {
		time.Sleep(min + time.Duration(rng.Int64N(int64(max-min))))
		kills = append(kills, w.killWorker(p, tp))
		p, tp = start(i)
	}
	return kills
}

// chaosWorkerApp is the application_name of the worker's connections in
// the Postgres scenario, so the test can count them.
const chaosWorkerApp = "scorekeeper-chaos-worker"

// workerConns counts the worker's connections to the database server.
func (w *world) workerConns() int {
	var n int
	if err := w.db.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE application_name = ?", chaosWorkerApp).Scan(context.Background(), &n); err != nil {
		return -1
	}
	return n
}

// postmasterStart is when the database server started, retried for a
// while (a restart breaks the test's own connections too); zero if it
// cannot be read.
func (w *world) postmasterStart() time.Time {
	var at time.Time
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := w.db.NewRaw("SELECT pg_postmaster_start_time()").Scan(ctx, &at)
		cancel()
		if err == nil {
			return at
		}
		time.Sleep(500 * time.Millisecond)
	}
	return time.Time{}
}

// runningWorkflows lists the workflow executions running on c's server.
func runningWorkflows(c client.Client) ([]*commonpb.WorkflowExecution, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "ExecutionStatus = 'Running'"})
	if err != nil {
		return nil, err
	}
	var out []*commonpb.WorkflowExecution
	for _, e := range resp.GetExecutions() {
		out = append(out, e.GetExecution())
	}
	return out, nil
}

// chaosCheck waits for the system to settle (every summary exact, no
// payout pending) and lists every violation of the invariants: the
// store's (reconciliation, quarantine, budget), the payouts' against the
// provider's ledger, and every summary as stored and as a web process
// serves it against the mock's truth and the ledger directly.
func (w *world) chaosCheck(t *testing.T, faults string, timeout time.Duration) chaosRow {
	t.Helper()
	ctx := context.Background()
	base := w.startWeb(t)
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
	row.violations = append(row.violations, w.storedSummaryViolations(ctx)...)
	// The web process follows the store's change feed: give it a moment.
	var served []string
	for end := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		if served = w.servedViolations(base); len(served) == 0 || time.Now().After(end) {
			break
		}
	}
	row.violations = append(row.violations, served...)
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
// latency and cut every connection, counting what it did.
type proxy struct {
	ln      net.Listener
	target  string
	latency atomic.Int64 // per chunk, nanoseconds
	down    atomic.Bool
	// delayed counts chunks held back by latency; refused connections
	// closed at once while cut.
	delayed, refused atomic.Int64
	mu               sync.Mutex
	conns            map[net.Conn]net.Conn // open: client side → database side
}

func startProxy(t *testing.T, dsn string) *proxy {
	t.Helper()
	u := strings.SplitN(strings.SplitN(dsn, "@", 2)[1], "/", 2)[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: u, conns: map[net.Conn]net.Conn{}}
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
			p.refused.Add(1)
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c] = up
		p.mu.Unlock()
		go func() {
			p.pipe(c, up)
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
		go p.pipe(up, c)
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
				p.delayed.Add(1)
				time.Sleep(d)
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// closeAll closes every open connection, returning how many.
func (p *proxy) closeAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for c, up := range p.conns {
		c.Close()
		up.Close()
	}
	p.conns = map[net.Conn]net.Conn{}
	return n
}

// cut drops every connection and refuses new ones for d, returning how
// many open connections it dropped.
func (p *proxy) cut(d time.Duration) int {
	p.down.Store(true)
	n := p.closeAll()
	time.Sleep(d)
	p.down.Store(false)
	return n
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

// operatorActions is what actDuringFaults did.
type operatorActions struct {
	held, refused int
	canceled      map[string]bool
	errs          []string
}

// actDuringFaults acts as an operator for d while the scenario's faults
// run: it holds random users' payouts (not a rejected user's), cancels
// each of their payouts never sent, and at the end releases every user
// it held. A cancel answered 200 is canceled; one whose answer was lost
// is classified by the payout's settled status once it settles.
func (w *world) actDuringFaults(base string, rng *rand.Rand, d time.Duration) operatorActions {
	out := operatorActions{canceled: map[string]bool{}}
	client := &http.Client{Timeout: 2 * time.Minute}
	post := func(path, body string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer s3cret")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	rows := func(user string) []servedPayout {
		resp, err := client.Get(base + "/api/users/" + user + "/payouts?limit=1000")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var ps []servedPayout
		_ = json.NewDecoder(resp.Body).Decode(&ps)
		return ps
	}
	var users []string
	seen := map[string]bool{}
	for _, tx := range w.mock.Transactions() {
		if tx.Type == scorekeeper.TxPayout && !w.mock.IsRejectedUser(tx.UserID) && !seen[tx.UserID] {
			seen[tx.UserID] = true
			users = append(users, tx.UserID)
		}
	}
	slices.Sort(users)
	held := map[string]bool{}
	lost := map[string]string{} // payout id → user, of cancels whose answer was lost
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond) {
		u := users[rng.IntN(len(users))]
		held[u] = true // released at the end whatever the answer
		if code, body, err := post("/api/users/"+u+"/payouts:hold", `{"reason":"chaos"}`); err != nil || code != http.StatusOK {
			out.errs = append(out.errs, fmt.Sprintf("hold %s: %d %s %v", u, code, body, err))
			continue
		}
		out.held++
		for _, p := range rows(u) {
			if p.Status != "held" || p.Attempts > 0 {
				continue
			}
			switch code, body, err := post("/api/users/"+u+"/payouts/"+p.ID+":cancel", `{"reason":"chaos"}`); {
			case err != nil:
				lost[p.ID] = u
			case code == http.StatusOK:
				out.canceled[p.ID] = true
			case code == http.StatusConflict:
				out.refused++ // sent meanwhile: an attempt was recorded first
			default:
				out.errs = append(out.errs, fmt.Sprintf("cancel %s: %d %s", p.ID, code, body))
			}
		}
	}
	for _, u := range sortedKeys(held) {
		if code, body, err := post("/api/users/"+u+"/payouts:release", ""); err != nil || code != http.StatusOK {
			out.errs = append(out.errs, fmt.Sprintf("release %s: %d %s %v", u, code, body, err))
		}
	}
	for id, u := range lost {
		for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
			ps := rows(u)
			if i := slices.IndexFunc(ps, func(p servedPayout) bool { return p.ID == id }); i >= 0 && ps[i].Status != "requested" && ps[i].Status != "held" {
				if ps[i].Status == "canceled" {
					out.canceled[id] = true
				}
				break
			}
		}
	}
	return out
}
