package httpx_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"scorekeeper/internal/httpx"
)

func TestParseBaseURL(t *testing.T) {
	for _, tt := range []struct {
		name, url string
		wantErr   string
	}{
		{"OK", "http://upstream.example:8080", ""},
		{"OKHTTPSWithPath", "https://upstream.example/api/", ""},
		{"OKUserInfo", "https://u:p@upstream.example", ""},
		{"ErrRelative", "/transactions", "must be an absolute http or https URL"},
		{"ErrNoScheme", "upstream.example:8080", "must be an absolute http or https URL"},
		{"ErrScheme", "ftp://upstream.example", "must be an absolute http or https URL"},
		{"ErrNoHost", "http://", "must be an absolute http or https URL"},
		{"ErrEmpty", "", "must be an absolute http or https URL"},
		{"ErrQuery", "http://upstream.example/?x=1", "must not have a query or fragment"},
		{"ErrEmptyQuery", "http://upstream.example?", "must not have a query or fragment"},
		{"ErrFragment", "http://upstream.example/#top", "must not have a query or fragment"},
		{"ErrUnparseable", "http://[::1", `invalid base URL "http://[::1"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := httpx.ParseBaseURL(tt.url)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, tt.url, u.String())
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, u)
		})
	}
}
