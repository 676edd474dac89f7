package httpx_test

import (
	"net/http"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"scorekeeper/internal/httpx"
)

// Ensure MethodName answers each of the methods Fiber serves with a string that
// does not share the caller's bytes, which fasthttp reuses (simulated by
// overwriting them), and anything else with "other".
func TestMethodName(t *testing.T) {
	for _, m := range []string{
		http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
	} {
		buf := []byte(m)
		got := httpx.MethodName(unsafe.String(&buf[0], len(buf)))
		for i := range buf {
			buf[i] = 'X'
		}
		require.Equal(t, m, got)
	}
	for _, m := range []string{"", "get", "BREW", "GETS"} {
		require.Equal(t, "other", httpx.MethodName(m), "%q", m)
	}
}
