package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The scripts of the Temporal one-shots (deploy/temporal/*.sh) run here as
// their services run them, `sh <script>` with the service's environment,
// against stand-ins of the admin-tools binaries (temporal-sql-tool, the
// temporal CLI) that log their arguments and play a server: no Docker, no
// Temporal, no Postgres.

// stubDir writes executable stand-ins (name → sh script body) into a
// directory and returns it, to put first on PATH.
func stubDir(t *testing.T, stubs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range stubs {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755))
	}
	return dir
}

// runScript runs script with sh as a compose service does, with env and the
// stand-ins of stubs first on PATH, and returns its output and error.
func runScript(t *testing.T, script, stubs string, env map[string]string) (string, error) {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to run the script with")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sh, script)
	cmd.Env = []string{"PATH=" + stubs + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stubCalls returns the argument lists a stand-in logged, one per call.
func stubCalls(t *testing.T, log string) [][]string {
	t.Helper()
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var calls [][]string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		calls = append(calls, strings.Split(line, "\x1f"))
	}
	return calls
}

// logArgs is sh that appends the stand-in's arguments to $STUB_LOG as one
// line, separated by the unit separator (arguments may hold spaces).
const logArgs = `sep=$(printf '\037'); line=""; first=1
for a in "$@"; do if [ $first = 1 ]; then line=$a; first=0; else line="$line$sep$a"; fi; done
printf '%s\n' "$line" >>"$STUB_LOG"
`

// sqlToolCall is one temporal-sql-tool call, its global flags read.
type sqlToolCall struct {
	flags map[string]string // --plugin, --ep, -p, -u, --db, and the command's -v, -d
	cmd   string            // create-database, setup-schema or update-schema
}

func parseSQLToolCall(t *testing.T, args []string) sqlToolCall {
	t.Helper()
	c := sqlToolCall{flags: map[string]string{}}
	aliases := map[string]string{"create": "create-database", "setup": "setup-schema", "update": "update-schema"}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case strings.HasPrefix(a, "-"):
			name, v, ok := strings.Cut(a, "=")
			if !ok {
				require.Less(t, i+1, len(args), "temporal-sql-tool %q: %s has no value", args, a)
				i++
				v = args[i]
			}
			c.flags[name] = v
		case c.cmd == "":
			c.cmd = cmpOr(aliases[a], a)
		default:
			t.Fatalf("temporal-sql-tool %q: unexpected argument %q", args, a)
		}
	}
	return c
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Ensure the schema one-shot creates both databases and brings each to the
// image's schema (persistence: postgresql/v12/temporal, visibility:
// postgresql/v12/visibility), in that order, connecting as the server does
// and never putting the password on a command line; and that it fails
// (compose retries it, the server does not start) when a step fails.
func TestComposeTemporalSchemaScript(t *testing.T) {
	s := loadComposeStack(t)
	ts := s.temporal(t)
	script := composeScript(t, ts.schema)
	env := composeEnviron(ts.schema)
	stubs := stubDir(t, map[string]string{"temporal-sql-tool": logArgs + `
printf '%s\n' "$SQL_PASSWORD" >>"$STUB_LOG.password"
for a in "$@"; do [ "$a" = "${STUB_FAIL:-}" ] && { echo "stub: $a failed" >&2; exit 1; }; done
exit 0
`})

	run := func(t *testing.T, extra map[string]string) ([]sqlToolCall, string, error) {
		log := filepath.Join(t.TempDir(), "calls")
		e := map[string]string{"STUB_LOG": log}
		for k, v := range env {
			e[k] = v
		}
		for k, v := range extra {
			e[k] = v
		}
		out, err := runScript(t, script, stubs, e)
		var calls []sqlToolCall
		for _, args := range stubCalls(t, log) {
			c := parseSQLToolCall(t, args)
			calls = append(calls, c)
			for _, a := range args {
				require.NotContains(t, a, env["POSTGRES_PWD"], "the password is never an argument (ps shows them): SQL_PASSWORD")
			}
		}
		if b, err := os.ReadFile(log + ".password"); err == nil {
			for _, pw := range strings.Fields(string(b)) {
				require.Equal(t, env["POSTGRES_PWD"], pw, "temporal-sql-tool reads the password from SQL_PASSWORD")
			}
		}
		return calls, out, err
	}

	t.Run("Fresh", func(t *testing.T) {
		calls, out, err := run(t, nil)
		require.NoError(t, err, out)
		versioned := "/etc/temporal/schema/postgresql/v12" // the admin-tools image's schema files
		want := []struct{ db, dir string }{
			{env["DBNAME"], versioned + "/temporal/versioned"},
			{env["VISIBILITY_DBNAME"], versioned + "/visibility/versioned"},
		}
		require.Len(t, calls, 3*len(want), "create-database, setup-schema, update-schema for each database: %s", out)
		for i, w := range want {
			got := calls[3*i : 3*i+3]
			require.Equal(t, []string{"create-database", "setup-schema", "update-schema"},
				[]string{got[0].cmd, got[1].cmd, got[2].cmd}, "database %s: in that order", w.db)
			for _, c := range got {
				require.Equal(t, w.db, cmpOr(c.flags["--db"], c.flags["--database"]), "%s", c.cmd)
				require.Equal(t, env["DB"], cmpOr(c.flags["--plugin"], c.flags["--pl"]), "%s --plugin", c.cmd)
				require.Equal(t, env["POSTGRES_SEEDS"], cmpOr(c.flags["--ep"], c.flags["--endpoint"]), "%s --ep", c.cmd)
				require.Equal(t, env["DB_PORT"], cmpOr(c.flags["-p"], c.flags["--port"]), "%s -p", c.cmd)
				require.Equal(t, env["POSTGRES_USER"], cmpOr(c.flags["-u"], c.flags["--user"]), "%s -u", c.cmd)
			}
			require.Equal(t, "0.0", cmpOr(got[1].flags["-v"], got[1].flags["--version"]), "setup-schema -v 0.0: the version tables only, the versions come from update-schema")
			require.Equal(t, w.dir, cmpOr(got[2].flags["-d"], got[2].flags["--schema-dir"]), "update-schema of %s", w.db)
		}
	})

	// Each step either succeeds or stops the script with an error.
	for _, step := range []string{"create-database", "setup-schema", "update-schema"} {
		t.Run("Fails/"+step, func(t *testing.T) {
			calls, out, err := run(t, map[string]string{"STUB_FAIL": step})
			require.Error(t, err, "a failed %s fails the one-shot: %s", step, out)
			require.Equal(t, step, calls[len(calls)-1].cmd, "nothing runs after the failed step")
		})
	}

	t.Run("OnlyPostgres", func(t *testing.T) {
		_, out, err := run(t, map[string]string{"DB": "mysql8"})
		require.Error(t, err)
		require.Contains(t, out, "PostgreSQL only")
	})
}

// temporalStub plays the temporal CLI against a server whose state is files
// in $STUB_STATE: "health" counts health checks (the first $STUB_UNHEALTHY
// fail), "ns-<name>" is a namespace (holding its retention), "sa-<ns>-<name>"
// a search attribute (holding its type). It insists on --address
// $STUB_ADDRESS, and reads flags as the CLI does, in any order.
const temporalStub = logArgs + `
addr=""; ns=""; name=""; typ=""; retention=""; words=""
while [ $# -gt 0 ]; do
	case "$1" in
	--address) addr=$2; shift 2 ;;
	--namespace|-n) ns=$2; shift 2 ;;
	--name) name=$2; shift 2 ;;
	--type) typ=$2; shift 2 ;;
	--retention) retention=$2; shift 2 ;;
	--description) shift 2 ;;
	-*) echo "stub: unknown flag $1" >&2; exit 2 ;;
	*) words="$words $1"; shift ;;
	esac
done
[ "$addr" = "$STUB_ADDRESS" ] || { echo "stub: --address $addr, want $STUB_ADDRESS" >&2; exit 2; }
case "$words" in
" operator cluster health")
	n=$(cat "$STUB_STATE/health" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$STUB_STATE/health"
	[ "$n" -gt "${STUB_UNHEALTHY:-0}" ] || { echo "Error: failed checking cluster health: unavailable" >&2; exit 1; }
	echo SERVING ;;
" operator namespace describe")
	[ -f "$STUB_STATE/ns-$ns" ] || { echo "Error: Namespace $ns is not found." >&2; exit 1; } ;;
" operator namespace create")
	[ -n "$retention" ] || { echo "stub: no --retention" >&2; exit 2; }
	[ -f "$STUB_STATE/ns-$ns" ] && { echo "Error: Namespace already exists." >&2; exit 1; }
	echo "$retention" >"$STUB_STATE/ns-$ns" ;;
" operator search-attribute list")
	[ -f "$STUB_STATE/ns-$ns" ] || { echo "Error: Namespace $ns is not found." >&2; exit 1; }
	printf '%s\n' "          Name                  Type" "  BuildIds                  KeywordList" "  WorkflowType              Keyword"
	for f in "$STUB_STATE"/sa-"$ns"-*; do [ -f "$f" ] && printf '  %-24s  %s\n' "${f##*/sa-$ns-}" "$(cat "$f")"; done
	exit 0 ;;
" operator search-attribute create")
	[ -f "$STUB_STATE/ns-$ns" ] || { echo "Error: Namespace $ns is not found." >&2; exit 1; }
	if [ -f "$STUB_STATE/sa-$ns-$name" ] && [ "$(cat "$STUB_STATE/sa-$ns-$name")" != "$typ" ]; then
		echo "Error: search attribute $name already exists and has different type $(cat "$STUB_STATE/sa-$ns-$name")" >&2; exit 1
	fi
	echo "$typ" >"$STUB_STATE/sa-$ns-$name" ;;
*) echo "stub: unexpected command:$words" >&2; exit 2 ;;
esac
`

// Ensure the setup one-shot waits for the frontend, creates the namespace
// (with the retention) and UserId as Keyword in it, exits 0 only once UserId
// is listed, changes nothing when run again, and fails when UserId exists
// with another type or the frontend never becomes healthy.
func TestComposeTemporalSetupScript(t *testing.T) {
	s := loadComposeStack(t)
	ts := s.temporal(t)
	script := composeScript(t, ts.setup)
	env := composeEnviron(ts.setup)
	ns := env["TEMPORAL_NAMESPACE"]
	require.Equal(t, s.cfg(t, "worker").TemporalNamespace, ns)
	stubs := stubDir(t, map[string]string{"temporal": temporalStub})

	// run runs the script against the server state in state and returns
	// the CLI calls it made (the words of each, flags dropped but for the
	// namespace, name, type and retention).
	run := func(t *testing.T, state string, extra map[string]string) ([]string, string, error) {
		log := filepath.Join(t.TempDir(), "calls")
		e := map[string]string{
			"STUB_LOG": log, "STUB_STATE": state, "STUB_ADDRESS": env["TEMPORAL_ADDRESS"],
			"SETUP_PAUSE": "0",
		}
		for k, v := range env {
			e[k] = v
		}
		for k, v := range extra {
			e[k] = v
		}
		out, err := runScript(t, script, stubs, e)
		var calls []string
		for _, args := range stubCalls(t, log) {
			var words []string
			for i := 0; i < len(args); i++ {
				switch args[i] {
				case "--address", "--description":
					i++
				case "--namespace", "--name", "--type", "--retention":
					words = append(words, args[i]+"="+args[i+1])
					i++
				default:
					words = append(words, args[i])
				}
			}
			calls = append(calls, strings.Join(words, " "))
		}
		return calls, out, err
	}
	const health = "operator cluster health"

	state := t.TempDir()
	t.Run("Fresh", func(t *testing.T) {
		calls, out, err := run(t, state, map[string]string{"STUB_UNHEALTHY": "2"})
		require.NoError(t, err, out)
		require.Equal(t, []string{health, health, health}, calls[:3], "waits for the frontend first: %s", out)
		require.Contains(t, calls, "operator namespace create --namespace="+ns+" --retention="+env["TEMPORAL_RETENTION"])
		require.Contains(t, calls, "operator search-attribute create --namespace="+ns+" --name=UserId --type=Keyword")
		require.Equal(t, "operator search-attribute list --namespace="+ns, calls[len(calls)-1], "exits once UserId is listed")
		sa, err := os.ReadFile(filepath.Join(state, "sa-"+ns+"-UserId"))
		require.NoError(t, err)
		require.Equal(t, "Keyword\n", string(sa))
	})
	t.Run("Again", func(t *testing.T) {
		calls, out, err := run(t, state, nil)
		require.NoError(t, err, out)
		for _, c := range calls {
			require.NotContains(t, c, " create", "nothing is created again: %q", calls)
		}
	})
	t.Run("UserIdOfAnotherType", func(t *testing.T) {
		state := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(state, "ns-"+ns), []byte("72h\n"), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(state, "sa-"+ns+"-UserId"), []byte("Text\n"), 0o600))
		_, out, err := run(t, state, map[string]string{"SETUP_ATTEMPTS": "2"})
		require.Error(t, err, out)
		require.Contains(t, out, "different type")
	})
	t.Run("NeverHealthy", func(t *testing.T) {
		calls, out, err := run(t, t.TempDir(), map[string]string{"STUB_UNHEALTHY": "1000", "SETUP_ATTEMPTS": "3"})
		require.Error(t, err, out)
		require.Equal(t, []string{health, health, health}, calls, "gives up after SETUP_ATTEMPTS")
		require.Contains(t, out, "giving up")
	})
}

// Ensure the scripts are POSIX sh (the admin-tools image runs them with
// its /bin/sh) and parse.
func TestComposeTemporalScriptsParse(t *testing.T) {
	s := loadComposeStack(t)
	ts := s.temporal(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, svc := range []string{ts.schema.Name, ts.setup.Name} {
		script := composeScript(t, s.p.Services[svc])
		b, err := os.ReadFile(script)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(string(b), "#!/bin/sh\n"), "%s: #!/bin/sh", script)
		// Bash constructs dash and busybox sh lack: [[ ]], pipefail,
		// function, indirection, here-strings, arrays.
		bashism := regexp.MustCompile(`(^|\s)\[\[\s|pipefail|(^|\s)function\s|\$\{!|<<<|\w+=\(`)
		for i, line := range strings.Split(string(b), "\n") {
			require.False(t, bashism.MatchString(line), "%s:%d: POSIX sh only: %s", script, i+1, line)
		}
		out, err := exec.Command(sh, "-n", script).CombinedOutput()
		require.NoError(t, err, "%s: %s", script, out)
	}
}

// Ensure docs/operations.md names the settings the stack makes, so that a
// cluster set up by hand gets the same: the UserId search attribute, both
// partition settings at the value of the dynamic config file.
func TestComposeTemporalOperationsDoc(t *testing.T) {
	b, err := os.ReadFile("docs/operations.md")
	require.NoError(t, err)
	doc := string(b)
	var dyn map[string]any
	require.NoError(t, yaml.Unmarshal(loadComposeStack(t).temporal(t).dynamicConfig(t), &dyn))
	keys := make([]string, 0, len(dyn))
	for k := range dyn {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		require.Contains(t, doc, k, "docs/operations.md: the dynamic config %s", k)
	}
	require.Contains(t, doc, "--name UserId --type Keyword")
	require.Contains(t, doc, "TEMPORAL_API_KEY")
}
