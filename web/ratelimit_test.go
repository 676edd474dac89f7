package web_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"scorekeeper/web"
)

// Ensure the public routes limit each client, answering 429 in the error
// shape, and leave health checks alone.
func TestRateLimit(t *testing.T) {
	app, _, _ := MustNewApp(t, web.Config{RateLimit: web.RateLimit{N: 3, Per: time.Minute}})
	get := func(path string) int {
		resp, err := app.Test(httptest.NewRequest("GET", path, nil), -1)
		require.NoError(t, err)
		if resp.StatusCode == 429 {
			var body struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			require.Equal(t, "rate_limited", body.Error.Code)
			require.NotEmpty(t, resp.Header.Get("Retry-After"))
		}
		return resp.StatusCode
	}
	require.Equal(t, 404, get("/api/users/nobody/summary"))
	require.Equal(t, 200, get("/api/payouts"))
	require.Equal(t, 404, get("/api/users/nobody/summary"))
	require.Equal(t, 429, get("/api/payouts"))
	require.Equal(t, 429, get("/api/users/nobody/summary"))
	require.Equal(t, 200, get("/healthz"), "health checks are not limited")
}
