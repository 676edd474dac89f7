package web_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"

	"scorekeeper/web"
)

func TestOpenAPI(t *testing.T) {
	app, _, _ := MustNewApp(t, web.Config{Metrics: func(c *fiber.Ctx) error { return nil }})
	resp, body := do(t, app, http.MethodGet, "/api/openapi.json")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "application/json")

	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &doc), "openapi.json parses as JSON")
	require.Regexp(t, `^3\.0\.\d+$`, doc["openapi"])
	paths, ok := doc["paths"].(map[string]any)
	require.True(t, ok)

	t.Run("OKPaths", func(t *testing.T) {
		got := map[string][]string{}
		for p, item := range paths {
			for m := range item.(map[string]any) {
				got[p] = append(got[p], m)
			}
			sort.Strings(got[p])
		}
		require.Equal(t, map[string][]string{
			"/api/users/{userId}/summary":             {"get"},
			"/api/users/{userId}/transactions":        {"get"},
			"/api/users/{userId}/payouts":             {"get"},
			"/api/users/{userId}/payouts:hold":        {"post"},
			"/api/users/{userId}/payouts:release":     {"post"},
			"/api/users/{userId}/payouts/{id}:retry":  {"post"},
			"/api/users/{userId}/payouts/{id}:cancel": {"post"},
			"/api/payouts":                            {"get"},
			"/api/quarantine":                         {"get"},
			"/api/reconcile":                          {"post"},
			"/api/sync":                               {"post"},
			"/api/sync/status":                        {"get"},
			"/healthz":                                {"get"},
			"/readyz":                                 {"get"},
			"/metrics":                                {"get"},
			"/api/openapi.json":                       {"get"},
			"/docs":                                   {"get"},
		}, got)
	})

	t.Run("OKEveryRouteDocumented", func(t *testing.T) {
		// A parameter is :name; an escaped colon (a custom method such as
		// payouts\:hold) is a literal one.
		param := regexp.MustCompile(`(^|[^\\]):(\w+)`)
		for _, r := range app.GetRoutes(true) {
			if r.Method == http.MethodHead {
				continue
			}
			p := strings.ReplaceAll(param.ReplaceAllString(r.Path, "$1{$2}"), `\:`, ":")
			item, ok := paths[p].(map[string]any)
			require.True(t, ok, "route %s %s is not in openapi.json", r.Method, r.Path)
			require.Contains(t, item, strings.ToLower(r.Method), "route %s %s", r.Method, r.Path)
		}
	})

	t.Run("OKStatuses", func(t *testing.T) {
		statuses := func(path, method string) []string {
			rs := paths[path].(map[string]any)[method].(map[string]any)["responses"].(map[string]any)
			var out []string
			for s := range rs {
				out = append(out, s)
			}
			sort.Strings(out)
			return out
		}
		require.Equal(t, []string{"200", "304", "400", "404", "405", "409", "429", "500", "503"}, statuses("/api/users/{userId}/summary", "get"))
		require.Equal(t, []string{"200", "304", "400", "404", "405", "429", "500", "503"}, statuses("/api/users/{userId}/transactions", "get"))
		require.Equal(t, []string{"200", "304", "400", "404", "405", "429", "500", "503"}, statuses("/api/users/{userId}/payouts", "get"))
		require.Equal(t, []string{"200", "304", "400", "405", "429", "500", "503"}, statuses("/api/payouts", "get"))
		require.Equal(t, []string{"200", "202", "400", "401", "403", "405", "429", "500", "503"}, statuses("/api/sync", "post"))
		require.Equal(t, []string{"200", "400", "401", "403", "405", "500", "503"}, statuses("/api/quarantine", "get"))
		require.Equal(t, []string{"200", "400", "405", "429", "500", "503"}, statuses("/api/sync/status", "get"))
		require.Equal(t, []string{"200", "405", "500", "503"}, statuses("/readyz", "get"))
	})

	t.Run("OKPayoutParameters", func(t *testing.T) {
		params := paths["/api/payouts"].(map[string]any)["get"].(map[string]any)["parameters"].([]any)
		var names []string
		for _, p := range params {
			if m := p.(map[string]any); m["in"] == "query" {
				names = append(names, m["name"].(string))
			}
		}
		require.Equal(t, []string{"status", "limit", "after", "sort"}, names)
	})

	t.Run("OKQuarantineParameters", func(t *testing.T) {
		op := paths["/api/quarantine"].(map[string]any)["get"].(map[string]any)
		var names []string
		for _, p := range op["parameters"].([]any) {
			if m := p.(map[string]any); m["in"] == "query" {
				names = append(names, m["name"].(string))
			}
		}
		require.Equal(t, []string{"limit", "after"}, names)
		require.Contains(t, op["security"], map[string]any{"adminToken": []any{}}, "documented as admin-only")
	})

	t.Run("OKRefsResolve", func(t *testing.T) {
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				if ref, ok := v["$ref"].(string); ok {
					require.True(t, strings.HasPrefix(ref, "#/"), ref)
					var cur any = doc
					for _, k := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
						m, ok := cur.(map[string]any)
						require.True(t, ok, "unresolvable $ref %s", ref)
						cur, ok = m[k]
						require.True(t, ok, "unresolvable $ref %s", ref)
					}
				}
				for _, x := range v {
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		walk(doc)
	})

	t.Run("OKSummaryExampleIsTheSeed", func(t *testing.T) {
		ex := paths["/api/users/{userId}/summary"].(map[string]any)["get"].(map[string]any)["responses"].(map[string]any)["200"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["example"]
		b, err := json.Marshal(ex)
		require.NoError(t, err)
		require.JSONEq(t, seedSummary, string(b))
	})
}

func TestDocs(t *testing.T) {
	app, _, _ := MustNewApp(t, web.Config{})
	resp, body := do(t, app, http.MethodGet, "/docs")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	require.Contains(t, body, "api/openapi.json")
	// Served from our binary: no CDN, no external asset of any kind.
	require.NotContains(t, body, "<script src")
	require.NotContains(t, body, "<link")
	require.NotRegexp(t, `https?://`, body)
}
