package scorekeeper_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"scorekeeper"
)

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Ensure a quarantine record keeps a small item whole, and of a big one
// only its first MaxQuarantineExcerpt bytes, cut on a rune boundary, with
// the whole item's size and SHA-256 either way.
func TestNewQuarantined(t *testing.T) {
	t.Run("OKSmallItemWhole", func(t *testing.T) {
		raw := []byte(`{"id":"q1","amount":-1,"note":"é"}`)
		q := scorekeeper.NewQuarantined("q1", raw, "amount must be positive")
		require.Equal(t, scorekeeper.Quarantined{
			ItemID: "q1", Raw: string(raw), Size: int64(len(raw)), SHA256: sha256Hex(raw), Reason: "amount must be positive",
		}, q)
	})
	t.Run("OKExactlyTheMax", func(t *testing.T) {
		raw := []byte(strings.Repeat("a", scorekeeper.MaxQuarantineExcerpt))
		q := scorekeeper.NewQuarantined("", raw, "r")
		require.False(t, q.Truncated)
		require.Equal(t, string(raw), q.Raw)
	})
	t.Run("OKBigItemExcerpt", func(t *testing.T) {
		raw := []byte(`{"note":"` + strings.Repeat("x", 5<<20) + `"}`)
		q := scorekeeper.NewQuarantined("", raw, "id is missing")
		require.True(t, q.Truncated)
		require.Equal(t, string(raw[:scorekeeper.MaxQuarantineExcerpt]), q.Raw)
		require.EqualValues(t, len(raw), q.Size)
		require.Equal(t, sha256Hex(raw), q.SHA256)
	})
	t.Run("OKCutOnRuneBoundary", func(t *testing.T) {
		// "é" is 2 bytes, "€" 3: the rune straddling the cut is left out whole.
		for _, pad := range []int{1, 2, 3} {
			raw := []byte(strings.Repeat("a", scorekeeper.MaxQuarantineExcerpt-pad) + strings.Repeat("€", 10))
			q := scorekeeper.NewQuarantined("", raw, "r")
			require.True(t, q.Truncated)
			require.True(t, utf8.ValidString(q.Raw), "pad %d", pad)
			require.LessOrEqual(t, len(q.Raw), scorekeeper.MaxQuarantineExcerpt)
			require.Greater(t, len(q.Raw), scorekeeper.MaxQuarantineExcerpt-utf8.UTFMax)
			require.True(t, strings.HasPrefix(string(raw), q.Raw))
		}
	})
	t.Run("OKInvalidUTF8Replaced", func(t *testing.T) {
		raw := []byte("{\"x\":\"\xff\xfe\"}")
		q := scorekeeper.NewQuarantined("", raw, "r")
		require.Equal(t, "{\"x\":\"\uFFFD\uFFFD\"}", q.Raw)
		require.False(t, q.Truncated, "all of the item is there, replacements aside")
		require.EqualValues(t, len(raw), q.Size)
		require.Equal(t, sha256Hex(raw), q.SHA256, "the hash is of the bytes upstream sent")
	})
	t.Run("OKLongReasonCut", func(t *testing.T) {
		q := scorekeeper.NewQuarantined("", []byte("{}"), strings.Repeat("é", scorekeeper.MaxQuarantineReason))
		require.LessOrEqual(t, len(q.Reason), scorekeeper.MaxQuarantineReason)
		require.True(t, strings.HasSuffix(q.Reason, "…"))
		require.True(t, utf8.ValidString(q.Reason))
	})
}

// Ensure Bounded gives a record built with its whole item in Raw (and no
// hash) its size and hash, cuts what a record holds beyond the bounds,
// and refuses an excerpt it cannot identify.
func TestQuarantined_Bounded(t *testing.T) {
	t.Run("OKWholeItemGetsHash", func(t *testing.T) {
		raw := `{"amount":1}`
		q, err := scorekeeper.Quarantined{Raw: raw, Reason: "missing id"}.Bounded()
		require.NoError(t, err)
		require.Equal(t, scorekeeper.NewQuarantined("", []byte(raw), "missing id"), q)
	})
	t.Run("OKBigWholeItemCut", func(t *testing.T) {
		raw := strings.Repeat("y", 3*scorekeeper.MaxQuarantineExcerpt)
		q, err := scorekeeper.Quarantined{Raw: raw, Reason: "r"}.Bounded()
		require.NoError(t, err)
		require.True(t, q.Truncated)
		require.Len(t, q.Raw, scorekeeper.MaxQuarantineExcerpt)
		require.EqualValues(t, len(raw), q.Size)
		require.Equal(t, sha256Hex([]byte(raw)), q.SHA256)
	})
	t.Run("OKStoredRowCut", func(t *testing.T) {
		// A row stored before records were bounded: whole, with its hash.
		raw := strings.Repeat("z", 2*scorekeeper.MaxQuarantineExcerpt)
		in := scorekeeper.Quarantined{Raw: raw, Size: int64(len(raw)), SHA256: sha256Hex([]byte(raw)), Reason: strings.Repeat("r", 5000)}
		q, err := in.Bounded()
		require.NoError(t, err)
		require.True(t, q.Truncated)
		require.Equal(t, raw[:scorekeeper.MaxQuarantineExcerpt], q.Raw)
		require.Equal(t, in.Size, q.Size)
		require.Equal(t, in.SHA256, q.SHA256)
		require.LessOrEqual(t, len(q.Reason), scorekeeper.MaxQuarantineReason)
	})
	t.Run("OKBoundedKeptAsIs", func(t *testing.T) {
		q := scorekeeper.NewQuarantined("i", []byte(strings.Repeat("w", 10000)), "r")
		got, err := q.Bounded()
		require.NoError(t, err)
		require.Equal(t, q, got)
	})
	t.Run("ErrExcerptWithoutHash", func(t *testing.T) {
		_, err := scorekeeper.Quarantined{Raw: "{", Truncated: true, Reason: "r"}.Bounded()
		require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err))
	})
	t.Run("ErrBadHash", func(t *testing.T) {
		for _, h := range []string{"abc", strings.Repeat("A", 64), strings.Repeat("g", 64), strings.Repeat("0", 65)} {
			_, err := scorekeeper.Quarantined{Raw: "{}", SHA256: h, Reason: "r"}.Bounded()
			require.Equal(t, scorekeeper.EInvalid, scorekeeper.ErrorCode(err), h)
		}
	})
}

func TestExcerpt(t *testing.T) {
	for _, tt := range []struct {
		s    string
		max  int
		want string
		cut  bool
	}{
		{"", 4, "", false},
		{"abc", 3, "abc", false},
		{"abcd", 3, "abc", true},
		{"aé", 2, "a", true},
		{"aé", 3, "aé", false},
		{"a€b", 3, "a", true},
		{"a\xffb", 4, "a\uFFFD", true},
		{"a\xffb", 5, "a\uFFFDb", false},
		{"abc", 0, "", true},
	} {
		got, cut := scorekeeper.Excerpt(tt.s, tt.max)
		require.Equal(t, tt.want, got, "%q %d", tt.s, tt.max)
		require.Equal(t, tt.cut, cut, "%q %d", tt.s, tt.max)
	}
}

func TestCutReason(t *testing.T) {
	require.Equal(t, "short", scorekeeper.CutReason("short", 64))
	require.Equal(t, "abcd…", scorekeeper.CutReason("abcdefgh", 7))
	require.Equal(t, "abcdefg", scorekeeper.CutReason("abcdefg", 7))
	require.Equal(t, "a\uFFFDb", scorekeeper.CutReason("a\xffb", 64), "invalid UTF-8 is replaced")
}
