package deploy_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"scorekeeper/config"
)

// Package deploy_test checks the compose stack (docker-compose.yml,
// .env.example, Dockerfile, .dockerignore and this folder) statically: no Docker engine runs
// where the tests do. The project is loaded with the Compose Specification's
// own library, as `docker compose --env-file .env.example config` would:
// interpolation from the env file, schema validation, consistency checks,
// paths resolved. (The shell's environment is left out, unlike with
// `docker compose`, so the result does not depend on who runs the test.)

const (
	composeFile = "docker-compose.yml"
	envExample  = ".env.example"
)

// TestMain runs the checks from the repository root, where the compose
// file, the Dockerfile and their paths are.
func TestMain(m *testing.M) {
	if err := os.Chdir(".."); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// The secrets come from the env file and are required (${VAR:?…}): without
// them compose stops with an error naming the variable instead of starting
// with a guessable password or with the admin routes open.
var requiredSecrets = []string{"ADMIN_TOKEN", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}

// loadComposeProject loads docker-compose.yml with the given options.
func loadComposeProject(t *testing.T, opts ...cli.ProjectOptionsFn) (*types.Project, error) {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	opts = append([]cli.ProjectOptionsFn{cli.WithWorkingDirectory(wd), cli.WithResolvedPaths(true)}, opts...)
	o, err := cli.NewProjectOptions([]string{composeFile}, opts...)
	require.NoError(t, err)
	return o.LoadProject(context.Background())
}

// composeStack is the loaded project with its scorekeeper services identified.
type composeStack struct {
	p *types.Project
	// image is the scorekeeper image, built by the only service with build:.
	image string
	// app maps each scorekeeper command (web, worker, …) to its service.
	app map[string]types.ServiceConfig
}

func loadComposeStack(t *testing.T) composeStack {
	t.Helper()
	p, err := loadComposeProject(t, cli.WithEnvFiles(envExample), cli.WithDotEnv)
	require.NoError(t, err, "docker compose --env-file %s config", envExample)
	s := composeStack{p: p, app: map[string]types.ServiceConfig{}}
	for _, svc := range p.Services {
		if svc.Build != nil {
			require.Empty(t, s.image, "one image is built once: only one service has build:")
			require.NotEmpty(t, svc.Image, "%s: the built image needs a name the other services can run", svc.Name)
			s.image = svc.Image
		}
	}
	require.NotEmpty(t, s.image, "some service builds the scorekeeper image")
	for _, svc := range p.Services {
		if svc.Image != s.image {
			continue
		}
		require.Len(t, svc.Command, 1, "%s runs one scorekeeper subcommand", svc.Name)
		cmd := svc.Command[0]
		require.NotContains(t, s.app, cmd, "two services run %q", cmd)
		s.app[cmd] = svc
	}
	return s
}

// service returns the one service whose image starts with prefix.
func (s composeStack) service(t *testing.T, prefix string) types.ServiceConfig {
	t.Helper()
	found := s.services(prefix)
	require.Len(t, found, 1, "one service runs %s…", prefix)
	return found[0]
}

// services returns the services whose image starts with prefix, by name.
func (s composeStack) services(prefix string) []types.ServiceConfig {
	var found []types.ServiceConfig
	for _, svc := range s.p.Services {
		if strings.HasPrefix(svc.Image, prefix) {
			found = append(found, svc)
		}
	}
	slices.SortFunc(found, func(a, b types.ServiceConfig) int { return strings.Compare(a.Name, b.Name) })
	return found
}

// oneShots returns the services another waits for to complete
// (service_completed_successfully): jobs that run and exit.
func (s composeStack) oneShots() map[string]bool {
	out := map[string]bool{}
	for _, svc := range s.p.Services {
		for dep, d := range svc.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				out[dep] = true
			}
		}
	}
	return out
}

func composeEnviron(svc types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// Ensure every scorekeeper service runs a real subcommand of the one image,
// with a configuration the binary accepts, wired to the other services.
func TestComposeFile(t *testing.T) {
	s := loadComposeStack(t)
	commands := []string{"web", "worker", "mockapi", "dev", "migrate"}
	for _, cmd := range []string{"web", "worker", "mockapi", "migrate"} {
		require.Contains(t, s.app, cmd, "a service runs `scorekeeper %s`", cmd)
	}
	for cmd, svc := range s.app {
		t.Run(svc.Name, func(t *testing.T) {
			require.True(t, slices.Contains(commands, cmd), "unknown command %q", cmd)
			if svc.Build == nil {
				require.Equal(t, types.PullPolicyNever, svc.PullPolicy, "the image is built locally, never pulled")
			} else {
				require.Equal(t, s.p.WorkingDir, svc.Build.Context, "built from the repository root")
				require.Equal(t, "Dockerfile", filepath.Base(svc.Build.Dockerfile))
			}
			env := composeEnviron(svc)
			cfg, err := config.FromEnv(func(k string) string { return env[k] })
			require.NoError(t, err)
			if cmd == "worker" {
				require.NoError(t, cfg.RequireUpstream())
			}
			if cmd == "web" || cmd == "worker" || cmd == "migrate" {
				require.True(t, strings.HasPrefix(cfg.DatabaseURL, "postgres://"), "%s runs on Postgres", svc.Name)
			}
		})
	}

	// Dependencies exist, with conditions compose knows and can check.
	for _, svc := range s.p.Services {
		for dep, d := range svc.DependsOn {
			require.Contains(t, s.p.Services, dep, "%s depends on %s", svc.Name, dep)
			require.Contains(t, []string{types.ServiceConditionStarted, types.ServiceConditionHealthy, types.ServiceConditionCompletedSuccessfully}, d.Condition)
			if d.Condition == types.ServiceConditionHealthy {
				hc := s.p.Services[dep].HealthCheck
				require.True(t, hc != nil && !hc.Disable && len(hc.Test) > 1, "%s waits for %s to be healthy: it needs a healthcheck", svc.Name, dep)
			}
		}
	}

	// Postgres: the database the services' DATABASE_URL names.
	pg := s.service(t, "postgres:")
	pgEnv := composeEnviron(pg)
	pgUser := cmp.Or(pgEnv["POSTGRES_USER"], "postgres")
	pgDB := cmp.Or(pgEnv["POSTGRES_DB"], pgUser)
	for _, cmd := range []string{"migrate", "web", "worker"} {
		u, err := url.Parse(s.cfg(t, cmd).DatabaseURL)
		require.NoError(t, err)
		pass, _ := u.User.Password()
		require.Equal(t, pg.Name, u.Hostname(), "%s: DATABASE_URL host", cmd)
		require.Equal(t, "5432", u.Port())
		require.Equal(t, pgUser, u.User.Username(), "%s: DATABASE_URL user", cmd)
		require.Equal(t, pgEnv["POSTGRES_PASSWORD"], pass, "%s: DATABASE_URL password (URL-safe characters only)", cmd)
		require.Equal(t, "/"+pgDB, u.Path, "%s: DATABASE_URL database", cmd)
	}

	// The one-shot migration waits for the real database and is retried;
	// web and worker start once it succeeded.
	migrate := s.app["migrate"]
	require.Equal(t, types.ServiceConditionHealthy, migrate.DependsOn[pg.Name].Condition, "migrate waits for Postgres to be healthy")
	require.True(t, strings.HasPrefix(migrate.Restart, "on-failure"), "migrate is retried on failure, got restart %q", migrate.Restart)
	temporalHost, _, err := net.SplitHostPort(s.cfg(t, "web").TemporalAddress)
	require.NoError(t, err)
	tmp := s.temporal(t)
	for _, cmd := range []string{"web", "worker"} {
		svc := s.app[cmd]
		require.Equal(t, types.ServiceConditionCompletedSuccessfully, svc.DependsOn[migrate.Name].Condition, "%s waits for the migrations", cmd)
		require.Equal(t, types.ServiceConditionHealthy, svc.DependsOn[temporalHost].Condition, "%s waits for Temporal (TEMPORAL_ADDRESS) to be healthy", cmd)
		require.Equal(t, types.ServiceConditionCompletedSuccessfully, svc.DependsOn[tmp.setup.Name].Condition, "%s waits for the Temporal setup (namespace, UserId) to complete", cmd)
		// Drain: web waits up to 15 s for in-flight requests on SIGTERM.
		require.NotNil(t, svc.StopGracePeriod, "%s: stop_grace_period", cmd)
		require.GreaterOrEqual(t, time.Duration(*svc.StopGracePeriod), 30*time.Second, "%s: stop_grace_period", cmd)
	}
	for _, u := range []string{s.cfg(t, "worker").UpstreamURL, s.cfg(t, "worker").PayoutURL} {
		pu, err := url.Parse(u)
		require.NoError(t, err)
		if pu.Hostname() == s.app["mockapi"].Name {
			require.Contains(t, s.app["worker"].DependsOn, pu.Hostname())
			require.Equal(t, composePort(t, s.cfg(t, "mockapi").MockAPIAddr), pu.Port(), "the mock listens where the worker calls it")
		}
	}

	// Every long-running service comes back after a crash or a reboot of
	// the Docker host; only the one-shots (the migration, Temporal's schema
	// and setup) may stay exited, once they succeeded: they are retried on
	// failure, a bounded number of times.
	oneShots := s.oneShots()
	for _, name := range []string{migrate.Name, tmp.schema.Name, tmp.setup.Name} {
		require.True(t, oneShots[name], "%s is a one-shot: a service waits for it to complete", name)
	}
	for _, svc := range s.p.Services {
		if oneShots[svc.Name] {
			require.Regexp(t, `^on-failure(:\d+)?$`, svc.Restart, "%s: a one-shot is retried on failure", svc.Name)
			continue
		}
		require.Contains(t, []string{"always", "unless-stopped"}, svc.Restart, "%s: restart policy", svc.Name)
	}

	// Published ports: the REST API (design §3), the Temporal Web UI,
	// Prometheus, and Grafana on a port other than the API's.
	published := map[string]string{} // host port → service
	for _, svc := range s.p.Services {
		for _, p := range svc.Ports {
			if p.Published == "" {
				continue
			}
			require.NotContains(t, published, p.Published, "host port %s published twice", p.Published)
			published[p.Published] = svc.Name
		}
	}
	composeRequirePublished(t, s.app["web"], "3000", composePort(t, s.cfg(t, "web").HTTPAddr))
	composeRequirePublished(t, tmp.ui, "8233", tmp.uiPort())
	composeRequirePublished(t, s.service(t, "prom/prometheus:"), "9090", "9090")
	grafana := s.service(t, "grafana/grafana:")
	require.Len(t, grafana.Ports, 1)
	require.Equal(t, uint32(3000), grafana.Ports[0].Target)
	require.NotEqual(t, "3000", grafana.Ports[0].Published, "Grafana cannot take the REST API's port")
	require.NotEmpty(t, grafana.Ports[0].Published)
}

// temporalCLIEmbeds is what each Temporal CLI release embeds in its dev
// server (its go.mod: go.temporal.io/server and
// github.com/temporalio/ui-server/v2): the compose stack runs that server
// and that Web UI, so that it and `make run` run the same Temporal.
// Bumping TEMPORAL_VER in the Makefile means a line here, and the images
// of docker-compose.yml to match.
var temporalCLIEmbeds = map[string]struct{ server, ui string }{
	"1.5.1": {server: "1.29.1", ui: "2.42.1"},
}

// Ensure the third-party images are pinned, Temporal's to the versions the
// CLI of the Makefile embeds (server, admin-tools of that server, UI), and
// the scorekeeper image is built with the Go version go.mod asks for.
func TestComposeImages(t *testing.T) {
	s := loadComposeStack(t)
	mk, err := os.ReadFile("Makefile")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^TEMPORAL_VER\s*:=\s*v?(\S+)`).FindSubmatch(mk)
	require.NotNil(t, m, "Makefile: TEMPORAL_VER")
	cli := string(m[1])
	emb, ok := temporalCLIEmbeds[cli]
	require.True(t, ok, "Makefile: TEMPORAL_VER %s: add the server and UI versions it embeds (its go.mod) to temporalCLIEmbeds, and pin them in %s", cli, composeFile)
	temporalCLIEmbedsFromModCache(t, cli, emb.server, emb.ui)
	// The server the tests build (make temporal-server) is that one too.
	srv := regexp.MustCompile(`(?m)^TEMPORAL_SERVER_VER\s*:=\s*v?(\S+)`).FindSubmatch(mk)
	require.NotNil(t, srv, "Makefile: TEMPORAL_SERVER_VER")
	require.Equal(t, emb.server, string(srv[1]), "Makefile: TEMPORAL_SERVER_VER must be the server TEMPORAL_VER's CLI embeds")

	want := map[string]*regexp.Regexp{
		"postgres":          regexp.MustCompile(`^16(\.\d+)?$`),
		"temporalio/server": regexp.MustCompile(`^` + regexp.QuoteMeta(emb.server) + `$`),
		// The admin-tools build of that server: its schema files and
		// temporal-sql-tool are that server's (tags are
		// <server>-tctl-<tctl>-cli-<cli> up to 1.29).
		"temporalio/admin-tools": regexp.MustCompile(`^` + regexp.QuoteMeta(emb.server) + `(-tctl-\d+(\.\d+)*-cli-\d+(\.\d+)*)?$`),
		"temporalio/ui":          regexp.MustCompile(`^` + regexp.QuoteMeta(emb.ui) + `$`),
		"prom/prometheus":        regexp.MustCompile(`^v[23]\.\d+\.\d+$`),
		"grafana/grafana":        regexp.MustCompile(`^11\.\d+\.\d+$`),
	}
	seen := map[string]bool{}
	for _, svc := range s.p.Services {
		if svc.Image == s.image {
			continue
		}
		name, tag, ok := strings.Cut(svc.Image, ":")
		require.True(t, ok, "%s: image %q has no tag", svc.Name, svc.Image)
		re, known := want[name]
		require.True(t, known, "%s: unexpected image %q", svc.Name, svc.Image)
		require.Regexp(t, re, tag, "%s: image %q", svc.Name, svc.Image)
		seen[name] = true
	}
	for name := range want {
		require.True(t, seen[name], "no service runs %s", name)
	}
	// Services of one image run one tag of it.
	tags := map[string]string{}
	for _, svc := range s.p.Services {
		name, tag, _ := strings.Cut(svc.Image, ":")
		if prev, ok := tags[name]; ok {
			require.Equal(t, prev, tag, "%s: every service runs the same %s", svc.Name, name)
		}
		tags[name] = tag
	}

	df, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	gomod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	require.NotNil(t, goVer)
	require.Regexp(t, `(?m)^FROM golang:`+regexp.QuoteMeta(string(goVer[1]))+`(\.\d+)?(-\S+)? AS build$`, string(df), "Dockerfile builds with the Go of go.mod")
	require.Regexp(t, `(?m)^ENTRYPOINT \["/usr/local/bin/scorekeeper"\]$`, string(df), "the services' commands are scorekeeper subcommands")
}

// temporalCLIEmbedsFromModCache checks temporalCLIEmbeds against the CLI's
// own go.mod where the module cache has it (`make temporal` builds the CLI
// from there); without it, the table alone is the reference.
func temporalCLIEmbedsFromModCache(t *testing.T, cli, server, ui string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Logf("go env GOMODCACHE: %v: versions checked against temporalCLIEmbeds only", err)
		return
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "cache", "download", "github.com", "temporalio", "cli", "@v", "v"+cli+".mod")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Logf("%s is not in the module cache: versions checked against temporalCLIEmbeds only", path)
		return
	}
	require.NoError(t, err)
	for mod, v := range map[string]string{"go.temporal.io/server": server, "github.com/temporalio/ui-server/v2": ui} {
		m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(mod) + ` v(\S+)`).FindSubmatch(b)
		require.NotNil(t, m, "%s requires %s", path, mod)
		require.Equal(t, v, string(m[1]), "the Temporal CLI %s embeds %s %s (%s): fix temporalCLIEmbeds", cli, mod, m[1], path)
	}
}

// temporalStack is Temporal in the compose stack: the server, the
// admin-tools one-shots before it (schema) and after it (namespace and
// search attribute), and the Web UI.
type temporalStack struct {
	server, schema, setup, ui types.ServiceConfig
}

func (s composeStack) temporal(t *testing.T) temporalStack {
	t.Helper()
	ts := temporalStack{server: s.service(t, "temporalio/server:"), ui: s.service(t, "temporalio/ui:")}
	tools := s.services("temporalio/admin-tools:")
	require.Len(t, tools, 2, "two admin-tools one-shots: the schema before the server, the namespace after it")
	for _, svc := range tools {
		switch {
		case ts.server.DependsOn[svc.Name].Condition == types.ServiceConditionCompletedSuccessfully:
			ts.schema = svc
		case svc.DependsOn[ts.server.Name].Condition == types.ServiceConditionHealthy:
			ts.setup = svc
		}
	}
	require.NotEmpty(t, ts.schema.Name, "the server waits for an admin-tools one-shot to complete: the schema")
	require.NotEmpty(t, ts.setup.Name, "an admin-tools one-shot waits for the server to be healthy: namespace and UserId")
	return ts
}

// frontendPort is the port the server's frontend listens on (its config
// template's FRONTEND_GRPC_PORT).
func (ts temporalStack) frontendPort() string {
	return cmp.Or(composeEnviron(ts.server)["FRONTEND_GRPC_PORT"], "7233")
}

// uiPort is the port the Web UI listens on in its container.
func (ts temporalStack) uiPort() string {
	return cmp.Or(composeEnviron(ts.ui)["TEMPORAL_UI_PORT"], "8080")
}

// dynamicConfig returns the dynamic config file the server reads
// (DYNAMIC_CONFIG_FILE_PATH), from the host directory mounted there.
func (ts temporalStack) dynamicConfig(t *testing.T) []byte {
	t.Helper()
	path := composeEnviron(ts.server)["DYNAMIC_CONFIG_FILE_PATH"]
	require.NotEmpty(t, path, "DYNAMIC_CONFIG_FILE_PATH: the image's default file has neither partition setting")
	if !filepath.IsAbs(path) {
		path = filepath.Join("/etc/temporal", path) // the image's working directory
	}
	raw, err := os.ReadFile(composeBind(t, ts.server, path))
	require.NoError(t, err, "DYNAMIC_CONFIG_FILE_PATH")
	return raw
}

// composeScript is the host file of the shell script a service runs as
// `sh <script>` (entrypoint and command together), bind-mounted read-only.
func composeScript(t *testing.T, svc types.ServiceConfig) string {
	t.Helper()
	args := append(slices.Clone([]string(svc.Entrypoint)), svc.Command...)
	require.GreaterOrEqual(t, len(args), 2, "%s: runs a script: %q", svc.Name, args)
	require.Contains(t, []string{"sh", "/bin/sh"}, args[0], "%s: the script runs with the image's POSIX sh: %q", svc.Name, args)
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeBind && (v.Target == args[1] || strings.HasPrefix(args[1], strings.TrimSuffix(v.Target, "/")+"/")) {
			require.True(t, v.ReadOnly, "%s: %s is mounted read-only", svc.Name, v.Target)
		}
	}
	host := composeBind(t, svc, args[1])
	_, err := os.Stat(host)
	require.NoError(t, err, "%s: %s", svc.Name, args[1])
	return host
}

// Ensure Temporal runs as deployed: the server on the stack's Postgres (its
// own databases, SQL visibility), its schema set up before it starts, the
// namespace and UserId created once it is healthy, a dynamic config with one
// task-queue partition, a Web UI on the frontend, and the scorekeeper
// services pointed at the frontend and waiting for all of it.
func TestComposeTemporal(t *testing.T) {
	s := loadComposeStack(t)
	ts := s.temporal(t)
	pg := s.service(t, "postgres:")
	pgEnv := composeEnviron(pg)
	env := composeEnviron(ts.server)
	frontend := net.JoinHostPort(ts.server.Name, ts.frontendPort())

	// Persistence and visibility: the stack's Postgres, two databases of
	// Temporal's own beside scorekeeper's.
	require.Equal(t, "postgres12", env["DB"], "the server's SQL plugin for PostgreSQL 12+")
	require.Equal(t, pg.Name, env["POSTGRES_SEEDS"])
	require.Equal(t, "5432", env["DB_PORT"])
	require.Equal(t, cmp.Or(pgEnv["POSTGRES_USER"], "postgres"), env["POSTGRES_USER"])
	require.Equal(t, pgEnv["POSTGRES_PASSWORD"], env["POSTGRES_PWD"])
	require.NotEmpty(t, env["DBNAME"])
	require.NotEmpty(t, env["VISIBILITY_DBNAME"])
	require.NotEqual(t, env["DBNAME"], env["VISIBILITY_DBNAME"])
	for _, db := range []string{env["DBNAME"], env["VISIBILITY_DBNAME"]} {
		require.NotEqual(t, pgEnv["POSTGRES_DB"], db, "Temporal's databases are its own, not scorekeeper's")
	}
	require.NotEqual(t, "true", strings.ToLower(env["ENABLE_ES"]), "SQL visibility (no Elasticsearch)")
	require.Equal(t, "true", env["SKIP_SCHEMA_SETUP"], "the schema is the one-shot's job")
	require.Equal(t, "0.0.0.0", env["BIND_ON_IP"], "the frontend is reachable from the other containers")
	require.Equal(t, types.ServiceConditionHealthy, ts.server.DependsOn[pg.Name].Condition, "the server waits for Postgres")

	// The schema one-shot sets up the databases the server uses, as the
	// same user, before it starts (its script: TestComposeTemporalSchemaScript).
	schemaEnv := composeEnviron(ts.schema)
	for _, k := range []string{"DB", "POSTGRES_SEEDS", "DB_PORT", "POSTGRES_USER", "POSTGRES_PWD", "DBNAME", "VISIBILITY_DBNAME"} {
		require.Equal(t, env[k], schemaEnv[k], "%s: %s as the server's", ts.schema.Name, k)
	}
	require.Equal(t, types.ServiceConditionHealthy, ts.schema.DependsOn[pg.Name].Condition, "%s waits for Postgres", ts.schema.Name)
	composeScript(t, ts.schema)

	// The setup one-shot creates the namespace scorekeeper uses (its
	// script: TestComposeTemporalSetupScript).
	setupEnv := composeEnviron(ts.setup)
	require.Equal(t, frontend, setupEnv["TEMPORAL_ADDRESS"], "%s: TEMPORAL_ADDRESS", ts.setup.Name)
	for _, cmd := range []string{"web", "worker"} {
		cfg := s.cfg(t, cmd)
		require.Equal(t, frontend, cfg.TemporalAddress, "%s: TEMPORAL_ADDRESS", cmd)
		require.Equal(t, cfg.TemporalNamespace, setupEnv["TEMPORAL_NAMESPACE"], "%s: the namespace %s creates", cmd, ts.setup.Name)
		require.Equal(t, types.ServiceConditionCompletedSuccessfully, s.app[cmd].DependsOn[ts.setup.Name].Condition, "%s waits for %s", cmd, ts.setup.Name)
	}
	retention, err := time.ParseDuration(setupEnv["TEMPORAL_RETENTION"])
	require.NoError(t, err, "%s: TEMPORAL_RETENTION", ts.setup.Name)
	require.GreaterOrEqual(t, retention, 24*time.Hour, "%s: TEMPORAL_RETENTION", ts.setup.Name)
	composeScript(t, ts.setup)

	// The dynamic config file: mounted, and one partition per task queue,
	// as every dev server of the project is started (scripts/run.sh).
	raw := ts.dynamicConfig(t)
	var dyn map[string][]struct {
		Value       any            `yaml:"value"`
		Constraints map[string]any `yaml:"constraints"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &dyn))
	for _, key := range []string{"matching.numTaskqueueReadPartitions", "matching.numTaskqueueWritePartitions"} {
		require.Len(t, dyn[key], 1, "%s: one value", key)
		require.Equal(t, 1, dyn[key][0].Value, "%s", key)
		require.Empty(t, dyn[key][0].Constraints, "%s: for every task queue", key)
	}

	// Health: the CLI in the server image asks the frontend.
	hc := ts.server.HealthCheck
	require.NotNil(t, hc)
	require.Greater(t, len(hc.Test), 5)
	require.Equal(t, []string{"CMD", "temporal", "operator", "cluster", "health"}, []string(hc.Test[:5]), "the CLI in the image checks the frontend")
	host, p, err := net.SplitHostPort(composeFlag([]string(hc.Test[5:]), "--address"))
	require.NoError(t, err)
	require.Contains(t, []string{"127.0.0.1", "localhost"}, host)
	require.Equal(t, ts.frontendPort(), p)

	// The Web UI: on the frontend, on the host's 8233, healthy on /healthz.
	uiEnv := composeEnviron(ts.ui)
	require.Equal(t, frontend, uiEnv["TEMPORAL_ADDRESS"], "%s: TEMPORAL_ADDRESS", ts.ui.Name)
	composeRequirePublished(t, ts.ui, "8233", ts.uiPort())
	require.Equal(t, types.ServiceConditionHealthy, ts.ui.DependsOn[ts.server.Name].Condition, "%s waits for the frontend", ts.ui.Name)
	require.NotNil(t, ts.ui.HealthCheck)
	require.True(t, slices.ContainsFunc([]string(ts.ui.HealthCheck.Test), func(a string) bool {
		return a == "http://127.0.0.1:"+ts.uiPort()+"/healthz" || a == "http://localhost:"+ts.uiPort()+"/healthz"
	}), "%s: healthcheck on the UI server's /healthz: %q", ts.ui.Name, ts.ui.HealthCheck.Test)
}

// Ensure Postgres is healthy only once the real server answers over TCP
// for the scorekeeper database: during first initialisation the image runs
// a temporary server on the Unix socket only.
func TestComposePostgres(t *testing.T) {
	s := loadComposeStack(t)
	pg := s.service(t, "postgres:")
	env := composeEnviron(pg)
	require.Equal(t, "scorekeeper", env["POSTGRES_DB"])
	require.NotNil(t, pg.HealthCheck)
	test := []string(pg.HealthCheck.Test)
	require.GreaterOrEqual(t, len(test), 2)
	var args []string
	switch test[0] {
	case "CMD":
		args = test[1:]
	case "CMD-SHELL":
		args = strings.Fields(test[1])
	default:
		t.Fatalf("healthcheck %q", test)
	}
	require.True(t, slices.Contains(args, "pg_isready") || slices.Contains(args, "psql"), "pg_isready or psql: %q", args)
	require.Contains(t, []string{"127.0.0.1", "localhost"}, cmp.Or(composeFlag(args, "-h"), composeFlag(args, "--host")), "over TCP: %q", args)
	require.Equal(t, env["POSTGRES_DB"], cmp.Or(composeFlag(args, "-d"), composeFlag(args, "--dbname")), "against the real database: %q", args)
	require.Equal(t, cmp.Or(env["POSTGRES_USER"], "postgres"), cmp.Or(composeFlag(args, "-U"), composeFlag(args, "--username")))
	var data bool
	for _, v := range pg.Volumes {
		data = data || v.Type == types.VolumeTypeVolume && v.Target == "/var/lib/postgresql/data"
	}
	require.True(t, data, "the data is kept in a named volume")
}

// Ensure the secrets come from the env file: every variable the compose
// file reads is documented in .env.example, each is required (${VAR:?…})
// or has a default (${VAR:-…}), the secrets are required, and a missing one
// stops compose with an error naming it.
func TestComposeEnvFile(t *testing.T) {
	raw, err := os.ReadFile(composeFile)
	require.NoError(t, err)
	var model map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &model))
	vars := template.ExtractVariables(model, template.DefaultPattern)
	require.NotEmpty(t, vars)
	example, err := os.ReadFile(envExample)
	require.NoError(t, err)
	env, err := dotenv.GetEnvFromFile(map[string]string{}, []string{envExample})
	require.NoError(t, err)

	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#?\s*([A-Z_][A-Z0-9_]*)=`).FindAllStringSubmatch(string(example), -1) {
		documented[m[1]] = true
	}
	// Every reference, in any string of the file (comments aside), is
	// ${NAME:?message} or ${NAME:-default}: a bare ${NAME} or $NAME would
	// silently become empty when unset. ($$ is a literal $.)
	ref := regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:[-?])?|\$([A-Za-z_][A-Za-z0-9_]*)`)
	for _, str := range composeStrings(model) {
		for _, m := range ref.FindAllStringSubmatch(str, -1) {
			if m[0] == "$$" {
				continue
			}
			require.True(t, m[2] != "", "%q: write ${%s:?message} or ${%s:-default}", str, m[1]+m[3], m[1]+m[3])
		}
	}
	for name, v := range vars {
		require.True(t, documented[name], "%s is read by %s but not documented in %s", name, composeFile, envExample)
		if v.Required {
			require.NotEmpty(t, env[name], "%s is required: %s gives it a value", name, envExample)
		}
	}
	for name := range documented {
		require.Contains(t, vars, name, "%s documents %s, which %s does not read", envExample, name, composeFile)
	}
	for _, name := range requiredSecrets {
		require.True(t, vars[name].Required, "%s is a secret: ${%s:?message}, never a default", name, name)
	}

	// Each required variable missing: compose refuses, naming it.
	for name, v := range vars {
		if !v.Required {
			continue
		}
		var list []string
		for k, val := range env {
			if k != name {
				list = append(list, k+"="+val)
			}
		}
		_, err := loadComposeProject(t, cli.WithEnv(list))
		require.Error(t, err, "%s unset", name)
		require.Contains(t, err.Error(), name)
	}

	// No secret is written into the compose file itself: each comes from
	// the env file (the example's placeholder values never appear in it).
	for _, name := range requiredSecrets {
		require.NotContains(t, string(raw), env[name], "%s's value is written in %s: read it as ${%s:?message}", name, composeFile, name)
	}

	// And they reach the services.
	s := loadComposeStack(t)
	require.Equal(t, env["ADMIN_TOKEN"], s.cfg(t, "web").AdminToken)
	require.Equal(t, env["POSTGRES_PASSWORD"], composeEnviron(s.service(t, "postgres:"))["POSTGRES_PASSWORD"])
	require.Equal(t, env["GRAFANA_ADMIN_PASSWORD"], composeEnviron(s.service(t, "grafana/grafana:"))["GF_SECURITY_ADMIN_PASSWORD"])
	ts := s.temporal(t)
	for _, svc := range []types.ServiceConfig{ts.server, ts.schema} {
		require.Equal(t, env["POSTGRES_PASSWORD"], composeEnviron(svc)["POSTGRES_PWD"], "%s: POSTGRES_PWD", svc.Name)
	}
}

// Ensure Prometheus scrapes web's /metrics and the worker's (METRICS_ADDR).
func TestComposePrometheus(t *testing.T) {
	s := loadComposeStack(t)
	svc := s.service(t, "prom/prometheus:")
	path := cmp.Or(composeFlag([]string(svc.Command), "--config.file"), "/etc/prometheus/prometheus.yml")
	raw, err := os.ReadFile(composeBind(t, svc, path))
	require.NoError(t, err)
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			Scheme        string `yaml:"scheme"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &prom))
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		if cmp.Or(sc.MetricsPath, "/metrics") != "/metrics" || cmp.Or(sc.Scheme, "http") != "http" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	require.Contains(t, targets, net.JoinHostPort(s.app["web"].Name, composePort(t, s.cfg(t, "web").HTTPAddr)), "web's /metrics")
	require.Contains(t, targets, net.JoinHostPort(s.app["worker"].Name, composePort(t, s.cfg(t, "worker").MetricsAddr)), "the worker's /metrics on METRICS_ADDR")
}

// Ensure Grafana is provisioned with the Prometheus datasource and a
// dashboard showing what operators watch (design §9).
func TestComposeGrafana(t *testing.T) {
	s := loadComposeStack(t)
	svc := s.service(t, "grafana/grafana:")
	env := composeEnviron(svc)
	prov := composeBind(t, svc, cmp.Or(env["GF_PATHS_PROVISIONING"], "/etc/grafana/provisioning"))

	// The datasource: the compose stack's Prometheus.
	prom := s.service(t, "prom/prometheus:")
	var uid string
	for _, f := range composeYAMLFiles(t, filepath.Join(prov, "datasources")) {
		var ds struct {
			Datasources []struct {
				UID  string `yaml:"uid"`
				Type string `yaml:"type"`
				URL  string `yaml:"url"`
			} `yaml:"datasources"`
		}
		require.NoError(t, yaml.Unmarshal(f, &ds))
		for _, d := range ds.Datasources {
			if d.Type == "prometheus" {
				require.Empty(t, uid, "one Prometheus datasource")
				require.Equal(t, "http://"+net.JoinHostPort(prom.Name, "9090"), d.URL)
				require.NotEmpty(t, d.UID, "the dashboards refer to the datasource by uid")
				uid = d.UID
			}
		}
	}
	require.NotEmpty(t, uid, "a provisioned Prometheus datasource")

	// The dashboards: loaded from a mounted directory.
	var dashboards [][]byte
	for _, f := range composeYAMLFiles(t, filepath.Join(prov, "dashboards")) {
		var dp struct {
			Providers []struct {
				Type    string `yaml:"type"`
				Options struct {
					Path string `yaml:"path"`
				} `yaml:"options"`
			} `yaml:"providers"`
		}
		require.NoError(t, yaml.Unmarshal(f, &dp))
		for _, p := range dp.Providers {
			require.Equal(t, "file", cmp.Or(p.Type, "file"))
			dir := composeBind(t, svc, p.Options.Path)
			files, err := filepath.Glob(filepath.Join(dir, "*.json"))
			require.NoError(t, err)
			for _, f := range files {
				b, err := os.ReadFile(f)
				require.NoError(t, err)
				dashboards = append(dashboards, b)
			}
		}
	}
	require.NotEmpty(t, dashboards, "a provisioned dashboard")
	if home := env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		_, err := os.Stat(composeBind(t, svc, home))
		require.NoError(t, err, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
	}

	var exprs []string
	for _, b := range dashboards {
		var d grafanaDashboard
		require.NoError(t, json.Unmarshal(b, &d))
		require.NotEmpty(t, d.UID)
		for _, p := range d.all() {
			for _, tg := range p.Targets {
				ds := tg.Datasource
				if ds == nil {
					ds = p.Datasource
				}
				require.NotNil(t, ds, "panel %q: datasource", p.Title)
				require.Equal(t, uid, ds.UID, "panel %q: the provisioned datasource", p.Title)
				require.Equal(t, strings.Count(tg.Expr, "("), strings.Count(tg.Expr, ")"), "panel %q: %s", p.Title, tg.Expr)
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	for _, metric := range []string{
		"scorekeeper_sync_lag_seconds",
		"scorekeeper_sync_late_coverage_lag_seconds",
		"scorekeeper_upstream_budget_used",
		"scorekeeper_upstream_budget_limit",
		"scorekeeper_upstream_budget_spent_last_hour",
		"scorekeeper_transactions_applied_total",
		"scorekeeper_transactions_quarantined_total",
		"scorekeeper_payouts_total",
		"scorekeeper_payouts_held_users",
		"scorekeeper_http_requests_total",
		"scorekeeper_http_request_duration_seconds_bucket",
		"temporal_workflow_task_execution_latency",
		"temporal_activity_execution_failed",
	} {
		require.True(t, slices.ContainsFunc(exprs, func(e string) bool {
			return regexp.MustCompile(`\b` + metric + `(_bucket|_sum|_count)?\b`).MatchString(e)
		}), "no panel shows %s", metric)
	}
	require.True(t, slices.ContainsFunc(exprs, func(e string) bool {
		return strings.Contains(e, "histogram_quantile(") && strings.Contains(e, "scorekeeper_http_request_duration_seconds_bucket")
	}), "HTTP latency quantiles")
	require.True(t, slices.ContainsFunc(exprs, func(e string) bool {
		return strings.Contains(e, "rate(scorekeeper_transactions_applied_total[") && strings.Contains(e, "by (type)")
	}), "applied: the rate by type")
	require.True(t, slices.ContainsFunc(exprs, func(e string) bool {
		return strings.Contains(e, "scorekeeper_upstream_budget_spent_last_hour") && strings.Contains(e, "by (kind)")
	}), "budget spent by kind")
	require.True(t, slices.ContainsFunc(exprs, func(e string) bool {
		return strings.Contains(e, "scorekeeper_payouts_total") && strings.Contains(e, "by (status)")
	}), "payouts by status")
}

// Ensure the build context holds what the build reads and not the
// repository's history, local tools, binaries, databases or secrets.
func TestComposeDockerignore(t *testing.T) {
	raw, err := os.ReadFile(".dockerignore")
	require.NoError(t, err)
	ignored := dockerignoreMatcher(string(raw))
	for _, p := range []string{
		".git/HEAD", ".tools/bin/temporal", "bin/scorekeeper", "scorekeeper", "data/scorekeeper.db",
		"scorekeeper.db", "db/x.db", "x.db-wal", "coverage.out", "web/web.test", ".env",
		"e2e/.cache/go-build/00/x", ".cache/x",
	} {
		require.True(t, ignored(p), ".dockerignore: %s is left in the build context", p)
	}
	// What `go build ./cmd/scorekeeper` reads from the module: every Go and
	// embedded file of the packages it builds, go.mod and go.sum.
	out, err := exec.Command("go", "list", "-e", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}{{end}}`,
		"./cmd/scorekeeper").Output()
	require.NoError(t, err)
	wd, err := os.Getwd()
	require.NoError(t, err)
	needed := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		rel, err := filepath.Rel(wd, f[0])
		require.NoError(t, err)
		for _, name := range f[1:] {
			needed = append(needed, filepath.ToSlash(filepath.Join(rel, name)))
		}
	}
	require.Greater(t, len(needed), 10)
	for _, p := range needed {
		require.False(t, ignored(p), ".dockerignore excludes %s, which the build needs", p)
	}
}

// dockerignoreMatcher reports whether a context path (slash-separated,
// relative) is excluded by the patterns, as Docker reads them: Go filepath.Match
// syntax plus ** for any number of directories, rooted at the context,
// a matched directory excluding its contents, the last match winning and
// ! re-including.
func dockerignoreMatcher(patterns string) func(string) bool {
	type rule struct {
		re     *regexp.Regexp
		negate bool
	}
	var rules []rule
	for _, line := range strings.Split(patterns, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		line = strings.TrimPrefix(line, "!")
		line = strings.Trim(filepath.ToSlash(filepath.Clean(line)), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch c := line[i]; {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("(/.*)?$")
		rules = append(rules, rule{regexp.MustCompile(re.String()), neg})
	}
	return func(p string) bool {
		excluded := false
		for _, r := range rules {
			if r.re.MatchString(p) {
				excluded = !r.negate
			}
		}
		return excluded
	}
}

type grafanaPanel struct {
	Title      string             `json:"title"`
	Type       string             `json:"type"`
	Datasource *grafanaDatasource `json:"datasource"`
	Panels     []grafanaPanel     `json:"panels"`
	Targets    []struct {
		Expr       string             `json:"expr"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaDashboard struct {
	UID    string         `json:"uid"`
	Panels []grafanaPanel `json:"panels"`
}

// all returns every panel, those in collapsed rows included.
func (d grafanaDashboard) all() []grafanaPanel {
	var out []grafanaPanel
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// cfg returns the configuration the scorekeeper service running cmd starts
// with.
func (s composeStack) cfg(t *testing.T, cmd string) config.Config {
	t.Helper()
	svc, ok := s.app[cmd]
	require.True(t, ok, "a service runs `scorekeeper %s`", cmd)
	env := composeEnviron(svc)
	c, err := config.FromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	return c
}

// composeStrings returns every string (keys included) of a YAML model.
func composeStrings(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case map[string]any:
		for k, e := range v {
			out = append(out, k)
			out = append(out, composeStrings(e)...)
		}
	case []any:
		for _, e := range v {
			out = append(out, composeStrings(e)...)
		}
	}
	return out
}

// composeBind is the host path bind-mounted where target (or a directory
// above it) is in svc's container.
func composeBind(t *testing.T, svc types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if target == v.Target {
			return v.Source
		}
		if rel, ok := strings.CutPrefix(target, strings.TrimSuffix(v.Target, "/")+"/"); ok {
			return filepath.Join(v.Source, rel)
		}
	}
	t.Fatalf("%s: nothing is mounted at %s", svc.Name, target)
	return ""
}

func composeYAMLFiles(t *testing.T, dir string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, pat := range []string{"*.yml", "*.yaml"} {
		files, err := filepath.Glob(filepath.Join(dir, pat))
		require.NoError(t, err)
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			out = append(out, b)
		}
	}
	return out
}

func composeRequirePublished(t *testing.T, svc types.ServiceConfig, host, target string) {
	t.Helper()
	for _, p := range svc.Ports {
		if p.Published == host && strconv.FormatUint(uint64(p.Target), 10) == target {
			return
		}
	}
	t.Fatalf("%s does not publish %s:%s (ports %+v)", svc.Name, host, target, svc.Ports)
}

// composePort is the port of a host:port address.
func composePort(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return p
}

// composeFlag is the last value of a command-line flag given as
// "--name=value" or "--name value".
func composeFlag(args []string, name string) string {
	v := composeFlags(args, name)
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func composeFlags(args []string, name string) []string {
	var out []string
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			out = append(out, v)
		} else if a == name && i+1 < len(args) {
			out = append(out, args[i+1])
		}
	}
	return out
}
