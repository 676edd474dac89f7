package mockapi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"scorekeeper"
)

// MalformedKind names one way an upstream item can be broken. A consumer
// must quarantine every kind and apply none.
type MalformedKind string

// The kinds of malformed items the mock generates.
const (
	MalformedUnknownType      MalformedKind = "unknown_type"       // type is not earned|spent|payout
	MalformedZeroAmount       MalformedKind = "zero_amount"        // amount is 0
	MalformedNegativeAmount   MalformedKind = "negative_amount"    // amount < 0
	MalformedTooManyDecimals  MalformedKind = "too_many_decimals"  // amount has 3 decimals, e.g. 12.345
	MalformedAmountString     MalformedKind = "amount_string"      // amount is a JSON string, e.g. "30.5"
	MalformedMissingID        MalformedKind = "missing_id"         // no id field
	MalformedMissingUserID    MalformedKind = "missing_user_id"    // no userId field
	MalformedMissingAmount    MalformedKind = "missing_amount"     // no amount field
	MalformedMissingCreatedAt MalformedKind = "missing_created_at" // no createdAt field
	MalformedBadCreatedAt     MalformedKind = "bad_created_at"     // createdAt is not ISO 8601, e.g. "16/03/2023 12:33:11"
)

// MalformedBig is the one oversized item Config.BigItemBytes adds: a valid
// shape (id, userId, createdAt, amount) with an unknown type and a huge
// extra string field "note". It is not among AllMalformedKinds: it is never
// drawn at random and MOCK_MALFORMED_KINDS cannot name it.
const MalformedBig MalformedKind = "big_item"

// AllMalformedKinds lists every MalformedKind drawn at random; it is what an
// empty Config.MalformedKinds means.
var AllMalformedKinds = []MalformedKind{
	MalformedUnknownType, MalformedZeroAmount, MalformedNegativeAmount,
	MalformedTooManyDecimals, MalformedAmountString, MalformedMissingID,
	MalformedMissingUserID, MalformedMissingAmount, MalformedMissingCreatedAt,
	MalformedBadCreatedAt,
}

func (k MalformedKind) valid() bool { return slices.Contains(AllMalformedKinds, k) }

// ParseMalformedKinds parses a comma-separated list of kinds, e.g.
// "unknown_type,zero_amount". "all" means AllMalformedKinds.
func ParseMalformedKinds(s string) ([]MalformedKind, error) {
	if strings.EqualFold(strings.TrimSpace(s), "all") {
		return slices.Clone(AllMalformedKinds), nil
	}
	var kinds []MalformedKind
	for _, part := range strings.Split(s, ",") {
		k := MalformedKind(strings.TrimSpace(part))
		if k == "" {
			continue
		}
		if !k.valid() {
			return nil, fmt.Errorf("unknown kind %q (want some of %v)", k, AllMalformedKinds)
		}
		kinds = append(kinds, k)
	}
	return kinds, nil
}

// MalformedItem is a broken item the mock serves, for tests that check
// quarantine.
type MalformedItem struct {
	Kind MalformedKind
	// Raw is the item's JSON exactly as served; unique among all items.
	Raw string
	// CreatedAt is the instant used to select the item by window, also when
	// Raw has no readable createdAt.
	CreatedAt time.Time
}

// entry is one item of the listing: a valid transaction, a malformed item,
// or a duplicate copy of either.
type entry struct {
	// created is createdAt in Unix milliseconds: the window key. Malformed
	// items keep it even when their JSON omits or garbles createdAt, so a
	// window still selects them.
	created int64
	// visible is when the item starts being served (created, or created +
	// LateDelay for late items), in Unix milliseconds.
	visible int64
	// order positions the item in the listing. It is a seeded hash, so the
	// listing is stable between calls but not chronological.
	order uint64
	raw   []byte
	tx    int32 // index into Server.txs, or -1
	mal   int32 // index into Server.malformed, or -1
	dup   bool  // a copy served in addition to the original
}

const (
	streamUsers uint64 = iota + 1
	streamHistory
	streamLive
	streamFaults
	streamReject
	streamPayoutID
	streamBigItem
	streamPages
)

// mix is splitmix64's finaliser: a cheap, well-distributed 64-bit hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// hashOf combines the seed and a path of integers into one seed. Deriving a
// generator per item (rather than drawing all items from one stream) keeps
// each item independent of how many came before, so live buckets can be
// generated lazily and still be reproducible.
func hashOf(seed int64, parts ...uint64) uint64 {
	h := mix(uint64(seed))
	for _, p := range parts {
		h = mix(h ^ p)
	}
	return h
}

func hashString(seed int64, stream uint64, s string) uint64 {
	h := hashOf(seed, stream)
	for i := 0; i < len(s); i++ {
		h = mix(h ^ uint64(s[i]))
	}
	return h
}

// prng is a splitmix64 generator: tiny, fast, and deterministic.
type prng struct{ s uint64 }

func (r *prng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a value in [0, 1).
func (r *prng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// intn returns a value in [0, n); n must be > 0.
func (r *prng) intn(n int64) int64 { return int64(r.next() % uint64(n)) }

// chance reports true with probability p. p == 0 never draws true, so
// disabling a fault is exact.
func (r *prng) chance(p float64) bool { return r.float() < p }

// genUsers returns n distinct 6-digit user ids in a seeded order, by a
// sparse Fisher–Yates shuffle of 0..999999 (rejection sampling would crawl
// when n approaches a million).
func genUsers(seed int64, n int) []string {
	r := prng{hashOf(seed, streamUsers)}
	swapped := make(map[int64]int64, n)
	at := func(i int64) int64 {
		if v, ok := swapped[i]; ok {
			return v
		}
		return i
	}
	users := make([]string, n)
	for i := int64(0); i < int64(n); i++ {
		j := i + r.intn(MaxUsers-i)
		vi, vj := at(i), at(j)
		swapped[i], swapped[j] = vj, vi
		users[i] = fmt.Sprintf("%06d", vj)
	}
	return users
}

// generator turns per-item generators into entries. It is used once for the
// history and then for each live minute, always under Server.mu.
type generator struct {
	cfg   *Config
	users []string
	kinds []MalformedKind
	// seenRaw guarantees each malformed item's JSON is unique, so a consumer
	// deduping quarantined items by raw bytes counts each exactly once.
	seenRaw map[string]struct{}

	entries   []entry
	txs       []scorekeeper.Transaction
	malformed []MalformedItem
}

const isoMillis = "2006-01-02T15:04:05.000Z"

// slot generates one valid transaction with createdAt drawn by created,
// plus possibly a malformed companion and duplicate copies.
func (g *generator) slot(r *prng, created func(*prng) int64) {
	id := uuid(r)
	user := g.pickUser(r)
	typ := g.pickType(r)
	amount := pickAmount(r, typ)
	at := created(r)
	tx := scorekeeper.Transaction{
		ID:        id,
		UserID:    user,
		CreatedAt: time.UnixMilli(at).UTC(),
		Type:      typ,
		Amount:    amount,
	}
	raw := appendItem(make([]byte, 0, 128), id, user, at, string(typ), amount.String())
	g.txs = append(g.txs, tx)
	g.emit(r, at, raw, int32(len(g.txs)-1), -1)

	if r.chance(g.cfg.MalformedRate) {
		// The companion gets its own generator so that turning malformed
		// items on does not change the valid data.
		mr := prng{r.next()}
		g.malformedItem(&mr, created(&mr))
	}
}

// emit adds an entry, deciding lateness and duplication from r.
func (g *generator) emit(r *prng, created int64, raw []byte, tx, mal int32) {
	late, dup := r.chance(g.cfg.LateRate), r.chance(g.cfg.DuplicateRate)
	order, dupOrder := r.next(), r.next()
	visible := created
	if late {
		visible += g.cfg.LateDelay.Milliseconds()
	}
	g.entries = append(g.entries, entry{created: created, visible: visible, order: order, raw: raw, tx: tx, mal: mal})
	if dup {
		// Same bytes, another position in the listing: the copy lands on a
		// different page whenever the window spans more than one.
		g.entries = append(g.entries, entry{created: created, visible: visible, order: dupOrder, raw: raw, tx: tx, mal: mal, dup: true})
	}
}

func (g *generator) malformedItem(r *prng, at int64) {
	kind := g.kinds[r.intn(int64(len(g.kinds)))]
	id := uuid(r)
	user := g.pickUser(r)
	typ := g.pickType(r)
	var raw []byte
	for attempt := 0; ; attempt++ {
		amount := pickAmount(r, typ).String()
		raw = malformedJSON(r, kind, id, user, at, string(typ), amount)
		if _, seen := g.seenRaw[string(raw)]; !seen {
			break
		}
		// Only kinds without an id can collide (same user, millisecond,
		// type and amount); a fresh amount makes them distinct.
		if attempt > 1000 {
			panic("mockapi: cannot make a unique malformed item")
		}
	}
	g.seenRaw[string(raw)] = struct{}{}
	g.malformed = append(g.malformed, MalformedItem{Kind: kind, Raw: string(raw), CreatedAt: time.UnixMilli(at).UTC()})
	g.emit(r, at, raw, -1, int32(len(g.malformed)-1))
}

// pickUser skews activity: squaring a uniform draw makes a few users much
// busier than most, as in real data.
func (g *generator) pickUser(r *prng) string {
	u := r.float()
	i := int(u * u * float64(len(g.users)))
	return g.users[min(i, len(g.users)-1)]
}

func (g *generator) pickType(r *prng) scorekeeper.TxType {
	earned, spent := 0.60, 0.85 // 60% earned, 25% spent, 15% payouts
	if ps := g.cfg.PayoutShare; ps > 0 {
		// The rest keeps earned and spent in the same 60:25 proportion.
		earned, spent = (1-ps)*0.60/0.85, 1-ps
	}
	switch u := r.float(); {
	case u < earned:
		return scorekeeper.TxEarned
	case u < spent:
		return scorekeeper.TxSpent
	default:
		return scorekeeper.TxPayout
	}
}

// pickAmount returns a positive amount with 0, 1 or 2 significant decimals
// (30, 12.5, 0.05 …), so a consumer meets every rendering.
func pickAmount(r *prng, typ scorekeeper.TxType) scorekeeper.Amount {
	lo, hi := int64(1), int64(250)
	switch typ {
	case scorekeeper.TxSpent:
		lo, hi = 0, 120
	case scorekeeper.TxPayout:
		lo, hi = 5, 150
	}
	whole := lo + r.intn(hi-lo+1)
	var frac int64
	switch r.intn(3) {
	case 1:
		frac = (1 + r.intn(9)) * 10
	case 2:
		frac = r.intn(10)*10 + 1 + r.intn(9)
	}
	if whole == 0 && frac == 0 {
		frac = 5
	}
	return scorekeeper.AmountFromCents(whole*100 + frac)
}

// uuid returns a random (version 4 layout) UUID string.
func uuid(r *prng) string {
	var b [16]byte
	hi, lo := r.next(), r.next()
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (56 - 8*i))
		b[8+i] = byte(lo >> (56 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexdig = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexdig[c>>4], hexdig[c&0xf])
	}
	return string(out)
}

// appendItem renders a valid item. Every value is generated by the mock
// (hex, digits, letters), so nothing needs escaping; amount is written as
// raw number text, never through float64.
func appendItem(b []byte, id, user string, at int64, typ, amount string) []byte {
	b = appendItemHead(b, id, user, at, typ)
	b = append(b, `,"amount":`...)
	b = append(b, amount...)
	return append(b, '}')
}

// appendItemHead renders an item's id, userId, createdAt and type, ending
// after the type's closing quote.
func appendItemHead(b []byte, id, user string, at int64, typ string) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","userId":"`...)
	b = append(b, user...)
	b = append(b, `","createdAt":"`...)
	b = time.UnixMilli(at).UTC().AppendFormat(b, isoMillis)
	b = append(b, `","type":"`...)
	b = append(b, typ...)
	return append(b, '"')
}

var unknownTypes = []string{"refund", "bonus", "chargeback", "adjustment", "transfer"}

func malformedJSON(r *prng, kind MalformedKind, id, user string, at int64, typ, amount string) []byte {
	type field struct{ key, val string }
	q := strconv.Quote
	fields := []field{
		{"id", q(id)},
		{"userId", q(user)},
		{"createdAt", q(time.UnixMilli(at).UTC().Format(isoMillis))},
		{"type", q(typ)},
		{"amount", amount},
	}
	set := func(key, val string) {
		for i := range fields {
			if fields[i].key == key {
				fields[i].val = val
			}
		}
	}
	drop := func(key string) {
		fields = slices.DeleteFunc(fields, func(f field) bool { return f.key == key })
	}
	switch kind {
	case MalformedUnknownType:
		set("type", q(unknownTypes[r.intn(int64(len(unknownTypes)))]))
	case MalformedZeroAmount:
		set("amount", "0")
	case MalformedNegativeAmount:
		set("amount", "-"+amount)
	case MalformedTooManyDecimals:
		// The last digit is non-zero: "12.340" would be an exact 12.34.
		set("amount", fmt.Sprintf("%d.%02d%d", r.intn(200), r.intn(100), 1+r.intn(9)))
	case MalformedAmountString:
		set("amount", q(amount))
	case MalformedMissingID:
		drop("id")
	case MalformedMissingUserID:
		drop("userId")
	case MalformedMissingAmount:
		drop("amount")
	case MalformedMissingCreatedAt:
		drop("createdAt")
	case MalformedBadCreatedAt:
		set("createdAt", q(time.UnixMilli(at).UTC().Format("02/01/2006 15:04:05")))
	}
	b := []byte{'{'}
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, f.key...)
		b = append(b, `":`...)
		b = append(b, f.val...)
	}
	return append(b, '}')
}

// generateHistory creates the Transactions items spread over
// [Start-History, Start], and the big item if configured, sorted by
// createdAt.
func (g *generator) generateHistory(startMs int64) {
	span := g.cfg.History.Milliseconds()
	from := startMs - span
	created := g.precision(func(r *prng) int64 { return from + r.intn(span+1) })
	g.grow(g.cfg.Transactions)
	for i := 0; i < g.cfg.Transactions; i++ {
		r := prng{hashOf(g.cfg.Seed, streamHistory, uint64(i))}
		g.slot(&r, created)
	}
	if g.cfg.BigItemBytes > 0 {
		// Its own stream, so adding it changes none of the other items.
		r := prng{hashOf(g.cfg.Seed, streamBigItem)}
		g.bigItem(&r, created(&r))
	}
	sortEntries(g.entries)
}

// precision applies Config.WholeSeconds to a createdAt generator. It only
// transforms the drawn instant, so the same items are generated either way.
func (g *generator) precision(created func(*prng) int64) func(*prng) int64 {
	if !g.cfg.WholeSeconds {
		return created
	}
	return func(r *prng) int64 { return floorSecond(created(r)) }
}

// floorSecond truncates Unix milliseconds to the second, towards the past
// also before 1970.
func floorSecond(ms int64) int64 {
	return ms - ((ms%1000)+1000)%1000
}

// bigItem adds the MalformedBig item of about Config.BigItemBytes bytes: the
// note field pads the item to exactly that size when it is larger than the
// item without padding.
func (g *generator) bigItem(r *prng, at int64) {
	id := uuid(r)
	user := g.pickUser(r)
	typ := unknownTypes[r.intn(int64(len(unknownTypes)))]
	amount := pickAmount(r, scorekeeper.TxEarned).String()
	b := appendItemHead(make([]byte, 0, g.cfg.BigItemBytes+256), id, user, at, typ)
	b = append(b, `,"note":"`...)
	tail := `","amount":` + amount + `}`
	const text = "lorem ipsum dolor sit amet, consectetur adipiscing elit; "
	for pad := g.cfg.BigItemBytes - len(b) - len(tail); pad > 0; {
		n := min(pad, len(text))
		b = append(b, text[:n]...)
		pad -= n
	}
	b = append(b, tail...)
	raw := string(b) // one copy, shared by seenRaw and the ground truth
	g.seenRaw[raw] = struct{}{}
	g.malformed = append(g.malformed, MalformedItem{Kind: MalformedBig, Raw: raw, CreatedAt: time.UnixMilli(at).UTC()})
	g.emit(r, at, b, -1, int32(len(g.malformed)-1))
}

// generateLiveMinute appends the LiveRate items of minute k after Start
// (createdAt in [Start+k·1m, Start+(k+1)·1m)). Each minute is generated from
// its own seed, whenever the clock first reaches it.
func (g *generator) generateLiveMinute(startMs, k int64) {
	base := startMs + k*time.Minute.Milliseconds()
	// With WholeSeconds, Start and so base are whole seconds: truncation
	// keeps every item in its minute, and the entries sorted.
	created := g.precision(func(r *prng) int64 { return base + r.intn(time.Minute.Milliseconds()) })
	first := len(g.entries)
	g.grow(g.cfg.LiveRate)
	for j := 0; j < g.cfg.LiveRate; j++ {
		r := prng{hashOf(g.cfg.Seed, streamLive, uint64(k), uint64(j))}
		g.slot(&r, created)
	}
	sortEntries(g.entries[first:])
}

// grow makes room for n more slots, with a margin for the malformed items
// and duplicates they bring, so generation does not copy large slices over
// and over.
func (g *generator) grow(n int) {
	extra := float64(n) * (g.cfg.MalformedRate + g.cfg.DuplicateRate) * 1.2
	g.txs = slices.Grow(g.txs, n)
	g.entries = slices.Grow(g.entries, n+int(extra)+16)
}

func sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int {
		if a.created != b.created {
			if a.created < b.created {
				return -1
			}
			return 1
		}
		switch {
		case a.order < b.order:
			return -1
		case a.order > b.order:
			return 1
		}
		return 0
	})
}

// liveMinutesThrough returns the index of the last live minute that has
// begun at nowMs, or -1 before Start.
func liveMinutesThrough(startMs, nowMs int64) int64 {
	if nowMs < startMs {
		return -1
	}
	return (nowMs - startMs) / time.Minute.Milliseconds()
}
