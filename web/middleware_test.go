package web

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"unsafe"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/require"
)

// Ensure validRequestID accepts exactly what the documented pattern
// ^[A-Za-z0-9._:-]{1,128}$ does.
func TestValidRequestID(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	cases := []string{"", "a", "trace-123.abc:9", strings.Repeat("a", 128), strings.Repeat("a", 129), "a b", "a\nb", "é", "a/b", "a_b", "A-Z", "0x7f\x7f"}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := "aZ09._:- /\n\x00\xffé"
	for range 20_000 {
		b := make([]byte, rng.IntN(132))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, id := range cases {
		require.Equal(t, pattern.MatchString(id), validRequestID(id), "%q", id)
	}
}

// Ensure MethodName answers each of Fiber's methods with a string that
// does not share the caller's bytes, which fasthttp reuses (simulated by
// overwriting them), and anything else with "other".
func TestMethodName(t *testing.T) {
	for _, m := range []string{
		fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut, fiber.MethodPatch,
		fiber.MethodDelete, fiber.MethodOptions, fiber.MethodConnect, fiber.MethodTrace,
	} {
		buf := []byte(m)
		got := MethodName(unsafe.String(&buf[0], len(buf)))
		for i := range buf {
			buf[i] = 'X'
		}
		require.Equal(t, m, got)
	}
	for _, m := range []string{"", "get", "BREW", "GETS"} {
		require.Equal(t, "other", MethodName(m), "%q", m)
	}
}
