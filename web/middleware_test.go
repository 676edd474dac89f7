package web

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

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
