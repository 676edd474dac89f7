package config_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"scorekeeper/config"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://app:s3cret@db:5432/scorekeeper?sslmode=disable", "postgres://app:xxxxx@db:5432/scorekeeper?sslmode=disable"},
		{"postgres://db/scorekeeper?user=app&password=s3cret", "postgres://db/scorekeeper?password=xxxxx&user=app"},
		{"https://u:s3cret@upstream.example/api", "https://u:xxxxx@upstream.example/api"},
		{"https://upstream.example/api?api_key=s3cret", "https://upstream.example/api?api_key=xxxxx"},
		{"postgres://app:s3c ret%zz@db/x", "postgres://… (not shown: does not parse)"},
		{"file:data/scorekeeper.db", "file:data/scorekeeper.db"},
	} {
		got := config.RedactURL(tc.in)
		require.Equal(t, tc.want, got)
		require.False(t, strings.Contains(got, "s3c"), "secret leaked in %q", got)
	}
}
