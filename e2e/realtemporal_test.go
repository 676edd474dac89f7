package e2e

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper"
	"scorekeeper/config/testcerts"
	"scorekeeper/db/dbtest"
	"scorekeeper/mockapi"
)

// A Temporal Service as operators deploy one, not the CLI's dev server:
// the server and its SQL tool built from go.temporal.io/server at the
// version the pinned CLI embeds (`make temporal-server`, into
// .tools/temporal-server), persistence and SQL visibility in two
// databases of the test Postgres set up by the compose stack's own script
// (deploy/temporal/setup-schema.sh), TLS on the frontend (mTLS on request)
// with certificates made by config/testcerts, and the namespace and UserId created by
// deploy/temporal/setup-namespace.sh with the Temporal CLI, over TLS.

// temporalServerDir is where `make temporal-server` installs the server
// (bin/temporal-server, bin/temporal-sql-tool).
func temporalServerDir(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("TEMPORAL_SERVER_DIR"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", ".tools", "temporal-server")
	if _, err := os.Stat(filepath.Join(dir, "bin", "temporal-server")); err != nil {
		tb.Fatalf("Temporal server not found in %s: run `make temporal-server` (or `make test`, which builds it)", dir)
	}
	return dir
}

// repoFile is a path in the repository.
func repoFile(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), ".."}, parts...)...)
}

// realTemporal is one Temporal Service process (frontend, history,
// matching and worker services in one, as `temporal-server start` runs
// them by default) on its Postgres databases.
type realTemporal struct {
	root     string
	hostPort string
	caFile   string
	mtls     bool
	// client is the certificate scorekeeper and the CLI present (mTLS).
	clientCert, clientKey string
	proc                  *exec.Cmd
	out                   *syncBuffer
	done                  chan struct{}
}

// startRealTemporal sets up the databases and starts the server with TLS
// on its frontend, requiring client certificates when mtls is set; the
// namespace "default" is created by setupNamespace, not here.
func startRealTemporal(tb testing.TB, mtls bool) *realTemporal {
	tb.Helper()
	dir := temporalServerDir(tb)
	r := &realTemporal{root: tb.TempDir(), mtls: mtls}
	ca := testcerts.NewCA(tb)
	r.caFile, _ = ca.Files(tb, r.root, "ca")
	serverCert, serverKey := ca.Issue(tb, "temporal.test", testcerts.Options{
		DNSNames: []string{"localhost", "temporal.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
	}).Files(tb, r.root, "server")
	r.clientCert, r.clientKey = ca.Issue(tb, "scorekeeper", testcerts.Options{}).Files(tb, r.root, "client")

	// Two databases of the test Postgres, brought to the server's schema
	// by the compose stack's one-shot script, with the SQL tool built
	// alongside the server and the schemas of its module.
	main, vis := dbtest.NewPostgresURL(tb), dbtest.NewPostgresURL(tb)
	u, err := url.Parse(main)
	require.NoError(tb, err)
	visURL, err := url.Parse(vis)
	require.NoError(tb, err)
	pwd, _ := u.User.Password()
	if pwd == "" {
		// A server that trusts local connections asks for none; the
		// script requires one, as a deployed server does.
		pwd = "unused"
	}
	host, port, err := net.SplitHostPort(u.Host)
	require.NoError(tb, err)
	dbName, visName := strings.TrimPrefix(u.Path, "/"), strings.TrimPrefix(visURL.Path, "/")
	schema := exec.Command("sh", repoFile("deploy", "temporal", "setup-schema.sh"))
	schema.Env = append(os.Environ(),
		"PATH="+filepath.Join(dir, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"DB=postgres12", "POSTGRES_SEEDS="+host, "DB_PORT="+port, "POSTGRES_USER="+u.User.Username(), "POSTGRES_PWD="+pwd,
		"DBNAME="+dbName, "VISIBILITY_DBNAME="+visName, "TEMPORAL_SCHEMA_DIR="+filepath.Join(dir, "schema"))
	out, err := schema.CombinedOutput()
	require.NoError(tb, err, "setup-schema.sh: %s", out)

	ports := make([]int, 9)
	for i := range ports {
		ports[i] = freeLowPort(tb)
	}
	r.hostPort = fmt.Sprintf("127.0.0.1:%d", ports[0])
	cfg := fmt.Sprintf(realTemporalConfig,
		dbName, host, port, u.User.Username(), pwd,
		visName, host, port, u.User.Username(), pwd,
		serverCert, serverKey, mtls, r.caFile,
		serverCert, serverKey, r.caFile,
		ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6], ports[7], ports[8],
		r.hostPort,
		repoFile("deploy", "temporal", "dynamicconfig", "scorekeeper.yaml"))
	require.NoError(tb, os.MkdirAll(filepath.Join(r.root, "config"), 0o755))
	require.NoError(tb, os.WriteFile(filepath.Join(r.root, "config", "development.yaml"), []byte(cfg), 0o600))
	r.start(tb)
	tb.Cleanup(func() { r.stop(tb) })
	return r
}

func (r *realTemporal) start(tb testing.TB) {
	tb.Helper()
	bin := filepath.Join(temporalServerDir(tb), "bin", "temporal-server")
	r.out = &syncBuffer{}
	r.proc = exec.Command(bin, "--root", r.root, "--config", "config", "--env", "development", "--allow-no-auth", "start")
	r.proc.Stdout, r.proc.Stderr = r.out, r.out
	r.proc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(tb, r.proc.Start())
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(r.proc, r.done)
	eventually(tb, 90*time.Second, "the Temporal server's frontend to answer over TLS", func() (bool, string) {
		select {
		case <-r.done:
			tb.Fatalf("the Temporal server exited: %s", tail(r.out.String(), 3000))
		default:
		}
		cmd := exec.Command(temporalCLI(tb), "operator", "cluster", "health")
		cmd.Env = envList(r.cliEnv(nil))
		out, err := cmd.CombinedOutput()
		return err == nil, string(out)
	})
}

// stop ends the server: SIGTERM, then SIGKILL after 10 s.
func (r *realTemporal) stop(tb testing.TB) {
	if r.proc == nil || r.proc.Process == nil {
		return
	}
	_ = syscall.Kill(-r.proc.Process.Pid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-r.proc.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
	if tb.Failed() {
		tb.Logf("Temporal server output (tail):\n%s", tail(r.out.String(), 4000))
	}
	r.proc = nil
}

// kill SIGKILLs the server (every service in it) and waits until it is gone.
func (r *realTemporal) kill() {
	_ = syscall.Kill(-r.proc.Process.Pid, syscall.SIGKILL)
	<-r.done
}

// env is the TEMPORAL_* configuration a client (scorekeeper or the CLI)
// needs for this server, with over on top.
func (r *realTemporal) env(over map[string]string) map[string]string {
	env := map[string]string{
		"TEMPORAL_ADDRESS":                 r.hostPort,
		"TEMPORAL_NAMESPACE":               "default",
		"TEMPORAL_TLS":                     "true",
		"TEMPORAL_TLS_SERVER_CA_CERT_PATH": r.caFile,
	}
	if r.mtls {
		env["TEMPORAL_TLS_CLIENT_CERT_PATH"] = r.clientCert
		env["TEMPORAL_TLS_CLIENT_KEY_PATH"] = r.clientKey
	}
	return maps(env, over)
}

// cliEnv is env for the Temporal CLI: the same variables, and a home of
// its own (no profile of the machine's user).
func (r *realTemporal) cliEnv(over map[string]string) map[string]string {
	return maps(r.env(map[string]string{"HOME": r.root, "PATH": os.Getenv("PATH")}), over)
}

// setupNamespace runs the compose stack's namespace one-shot against the
// server: the namespace and its UserId search attribute, created with the
// Temporal CLI over the same TLS configuration scorekeeper reads.
func (r *realTemporal) setupNamespace(tb testing.TB) {
	tb.Helper()
	cmd := exec.Command("sh", repoFile("deploy", "temporal", "setup-namespace.sh"))
	cmd.Env = envList(r.cliEnv(map[string]string{
		"PATH":               filepath.Dir(temporalCLI(tb)) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"TEMPORAL_RETENTION": "24h", "SETUP_PAUSE": "1",
	}))
	out, err := cmd.CombinedOutput()
	require.NoError(tb, err, "setup-namespace.sh: %s", out)
}

// freeLowPort is a free TCP port below 32768: the server records its
// services' membership ports in a smallint column, so the kernel's
// ephemeral ports (32768 and up) do not fit.
func freeLowPort(tb testing.TB) int {
	tb.Helper()
	for range 1000 {
		port := 20000 + mrand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	tb.Fatal("no free port below 32768")
	return 0
}

func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// realTemporalConfig is the server's configuration; the placeholders are
// filled by startRealTemporal in order.
const realTemporalConfig = `log:
  stdout: true
  level: warn

persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: %q
        connectAddr: "%s:%s"
        connectProtocol: tcp
        user: %q
        password: %q
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: %q
        connectAddr: "%s:%s"
        connectProtocol: tcp
        user: %q
        password: %q
        maxConns: 4
        maxIdleConns: 4
        maxConnLifetime: 1h

global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  tls:
    frontend:
      server:
        certFile: %q
        keyFile: %q
        requireClientAuth: %t
        clientCaFiles: [%q]
    systemWorker:
      certFile: %q
      keyFile: %q
      client:
        serverName: temporal.test
        rootCaFiles: [%q]

services:
  frontend:
    rpc:
      grpcPort: %d
      membershipPort: %d
      httpPort: %d
      bindOnLocalHost: true
  history:
    rpc:
      grpcPort: %d
      membershipPort: %d
      bindOnLocalHost: true
  matching:
    rpc:
      grpcPort: %d
      membershipPort: %d
      bindOnLocalHost: true
  worker:
    rpc:
      grpcPort: %d
      membershipPort: %d
      bindOnLocalHost: true

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: %q

dcRedirectionPolicy:
  policy: noop

dynamicConfigClient:
  filepath: %q
  pollInterval: 10s
`

// requireRefusal waits for p to exit non-zero within 30 s, its output one
// line containing every one of want.
func requireRefusal(t *testing.T, p *proc, why string, want ...string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the worker kept running %s", why)
	}
	require.NotZero(t, p.cmd.ProcessState.ExitCode(), why)
	out := strings.TrimSpace(p.output())
	require.NotContains(t, out, "\n", "%s: one line", why)
	for _, w := range want {
		require.Contains(t, out, w, "%s:\n%s", why, out)
	}
}

// Ensure scorekeeper runs on a real Temporal Service (the server built from
// its module on Postgres with SQL visibility, not the dev server) over TLS,
// and over mTLS with a client certificate required: a worker refuses to
// start on a namespace without UserId and (TLS) with a CA that did not
// sign the server's certificate, one line each; once the compose stack's
// setup script has created the namespace and UserId with the Temporal
// CLI over the same TLS variables, the worker syncs and pays through a
// worker SIGKILL and (mTLS) a SIGKILL and restart of the Temporal server
// on its Postgres state, two web processes serve it, every summary is
// exact against the mock, nothing is paid twice, and a payout workflow is
// found by UserId through SQL visibility.
func TestRealTemporal(t *testing.T) {
	for _, mtls := range []bool{false, true} {
		name := "TLS"
		if mtls {
			name = "mTLS"
		}
		t.Run(name, func(t *testing.T) {
			rt := startRealTemporal(t, mtls)
			w := newWorldTB(t, 300, 13400, func(c *mockapi.Config) { c.PayoutFailRate = 0.1 })
			w.env = maps(w.env, rt.env(nil))
			cli := func(args ...string) (string, error) {
				cmd := exec.Command(temporalCLI(t), args...)
				cmd.Env = envList(rt.cliEnv(nil))
				out, err := cmd.CombinedOutput()
				return string(out), err
			}

			out, err := cli("operator", "namespace", "create", "--namespace", "default", "--retention", "24h")
			require.NoError(t, err, out)
			if !mtls {
				stranger, _ := testcerts.NewCA(t).Files(t, t.TempDir(), "stranger")
				p := startProc(t, "worker-wrong-ca", "worker", maps(w.env, map[string]string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH": stranger}))
				requireRefusal(t, p, "trusting a CA that did not sign the server's certificate", "certificate signed by unknown authority")
			} else {
				p := startProc(t, "worker-no-cert", "worker", maps(w.env, map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": "", "TEMPORAL_TLS_CLIENT_KEY_PATH": ""}))
				requireRefusal(t, p, "without the client certificate the server requires", "connect to Temporal", "TEMPORAL_TLS_CLIENT_CERT_PATH")
			}
			eventually(t, time.Minute, "the namespace to be served", func() (bool, string) {
				out, err := cli("workflow", "count", "--namespace", "default")
				return err == nil, out
			})
			p := startProc(t, "worker-no-userid", "worker", w.env)
			requireRefusal(t, p, "on a namespace without UserId", "UserId", "search-attribute create")

			rt.setupNamespace(t)
			worker := startProc(t, "worker", "worker", w.env)
			web2 := w.startWeb(t)
			time.Sleep(4 * time.Second)
			at := w.progress()
			worker.kill()
			require.True(t, at.midSync() || at.pending > 0, "the worker is killed with work in progress: %s", at)
			worker = startProc(t, "worker-2", "worker", w.env)
			faults := "1 worker SIGKILL"
			if mtls {
				time.Sleep(3 * time.Second)
				at := w.progress()
				rt.kill()
				require.True(t, at.midSync() || at.pending > 0, "the server is killed with work in progress: %s", at)
				time.Sleep(2 * time.Second)
				rt.start(t)
				faults += ", Temporal server SIGKILLed and restarted on its Postgres state"
			}
			row := w.chaosCheck(t, faults, 6*time.Minute)
			for _, v := range row.violations {
				t.Errorf("violation: %s", v)
			}
			require.Empty(t, w.servedViolations(web2), "the second web process")

			var user string
			for _, tx := range w.mock.Transactions() {
				if tx.Type == scorekeeper.TxPayout {
					user = tx.UserID
					break
				}
			}
			require.NotEmpty(t, user)
			out, err = cli("workflow", "list", "--namespace", "default", "--query", fmt.Sprintf("UserId = %q", user))
			require.NoError(t, err, out)
			require.Contains(t, out, "payout-"+user, "the user's payout workflow, found through SQL visibility")
			worker.stop()
		})
	}
}
