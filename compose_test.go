package scorekeeper_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"scorekeeper/config"
)

// Ensure docker-compose.yml would run: every scorekeeper service runs a
// real command with a configuration the binary accepts, its dependencies
// exist, and the ports of design §3 and the Temporal Web UI are published.
// (No Docker engine runs where the tests do, so this is checked statically.)
func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("docker-compose.yml")
	require.NoError(t, err)
	var doc struct {
		Services map[string]struct {
			Image       string         `yaml:"image"`
			Build       any            `yaml:"build"`
			Command     []string       `yaml:"command"`
			Environment map[string]any `yaml:"environment"`
			Ports       []string       `yaml:"ports"`
			DependsOn   map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	commands := []string{"web", "worker", "mockapi", "dev", "migrate"}
	var ports []string
	for name, svc := range doc.Services {
		t.Run(name, func(t *testing.T) {
			require.True(t, svc.Image != "" || svc.Build != nil, "needs an image or a build")
			for dep, cond := range svc.DependsOn {
				require.Contains(t, doc.Services, dep)
				require.Contains(t, []string{"service_started", "service_healthy", "service_completed_successfully"}, cond.Condition)
			}
			ports = append(ports, svc.Ports...)
			if svc.Build == nil {
				return
			}
			require.Len(t, svc.Command, 1)
			require.True(t, slices.Contains(commands, svc.Command[0]), "unknown command %q", svc.Command[0])
			env := map[string]string{}
			for k, v := range svc.Environment {
				env[k] = strings.TrimSpace(toString(v))
			}
			cfg, err := config.FromEnv(func(k string) string { return env[k] })
			require.NoError(t, err)
			if svc.Command[0] == "worker" {
				require.NoError(t, cfg.RequireUpstream())
			}
			if svc.Command[0] == "web" || svc.Command[0] == "worker" || svc.Command[0] == "migrate" {
				require.True(t, strings.HasPrefix(cfg.DatabaseURL, "postgres://"), "%s runs on Postgres", name)
			}
		})
	}
	require.Contains(t, ports, "3000:3000")
	require.Contains(t, ports, "8233:8233")
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := yaml.Marshal(v)
		return string(b)
	}
}
