package distlock

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A lease value carries its owner and metadata so that the stored string
// has no space and no separator but its own, and reads back exactly,
// whatever the bytes; printable text, unicode included, is kept as it is.
func TestValueOwnerMetadataRoundTrip(t *testing.T) {
	owners := []string{"web-1:4242", "billing worker 3", "naïve ✓ 東京", "a|b%c", strings.Repeat("o", MaxOwnerLen)}
	metas := []string{"", "job 42", "line\nbreak\ttab", "\x00\xff\xfe invalid utf-8", "|%|% %zz", "emoji 🚀", "\u00a0nbsp\u2028ls", strings.Repeat("\x01", MaxMetadataLen)}
	for _, owner := range owners {
		for _, meta := range metas {
			v := newValue("") + valueSuffix(owner, meta)
			assert.NotContains(t, v, " ", "value of %q, %q", owner, meta)
			assert.Equal(t, 1+len(nonEmpty(meta)), strings.Count(v, "|"), "separators in %q", v)
			assert.LessOrEqual(t, len(v), maxValueLen, "value of %q, %q", owner, meta)
			o, m, ok := parseValue(v)
			require.True(t, ok, "parse %q", v)
			assert.Equal(t, owner, o, "owner of %q", v)
			assert.Equal(t, meta, m, "metadata of %q", v)
			assert.Equal(t, v[:randomLen], random(v))
		}
	}
	// Printable text is kept, unescaped, for whoever reads the key with
	// redis-cli.
	assert.Equal(t, "|naïve%20✓|job%2042%7C%25", valueSuffix("naïve ✓", "job 42|%"))
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// Values that are not a distlock lease's with an owner: an older
// distlock's (32 hex digits alone) has owner and metadata ""; another
// program's is not distlock's; fields after the metadata are ignored.
func TestParseValue(t *testing.T) {
	for _, c := range []struct {
		v           string
		owner, meta string
		ok          bool
	}{
		{"0123456789abcdef0123456789abcdef", "", "", true},
		{"0123456789abcdef0123456789abcdef|host:1", "host:1", "", true},
		{"0123456789abcdef0123456789abcdef|host:1|m%20x", "host:1", "m x", true},
		{"0123456789abcdef0123456789abcdef|host:1|m|later|fields", "host:1", "m", true},
		{"0123456789abcdef0123456789abcdef||m", "", "m", true},
		{"", "", "", false},
		{"ABCD", "", "", false},
		{"0123456789ABCDEF0123456789ABCDEF", "", "", false},
		{"0123456789abcdef0123456789abcdefX", "", "", false},
		{"0123456789abcdef0123456789abcdef|bad%zz", "", "", false},
		{"0123456789abcdef0123456789abcdef|host|bad%2", "", "", false},
		{"0123456789abcdef0123456789abcdef\x0011", "", "", false}, // a long value, as the watch reads it
	} {
		o, m, ok := parseValue(c.v)
		assert.Equal(t, c.ok, ok, "ok of %q", c.v)
		assert.Equal(t, c.owner, o, "owner of %q", c.v)
		assert.Equal(t, c.meta, m, "metadata of %q", c.v)
	}
}

// The default owner is hostname:pid, and always a valid one.
func TestDefaultOwner(t *testing.T) {
	o := defaultOwner()
	require.NoError(t, checkOwner(o))
	assert.Regexp(t, `^.+:\d+$`, o)
}

// A handoff gives the next lease the metadata the waiting goroutines
// asked for: the most common, the holder's own on a tie with it, else the
// least.
func TestNextMetadata(t *testing.T) {
	q := &localQueue{slots: make(map[string]*slot)}
	s := q.slotLocked("n")
	tr := &turn{q: q, name: "n", s: s}
	assert.Equal(t, "own", tr.nextMetadata("own"), "no waiter")
	s.wants = map[string]int{"b": 1}
	assert.Equal(t, "b", tr.nextMetadata("own"), "one waiter")
	s.wants = map[string]int{"b": 1, "a": 1}
	assert.Equal(t, "a", tr.nextMetadata("own"), "a tie")
	s.wants = map[string]int{"b": 1, "own": 1}
	assert.Equal(t, "own", tr.nextMetadata("own"), "a tie with the holder's")
	s.wants = map[string]int{"b": 2, "own": 1, "": 1}
	assert.Equal(t, "b", tr.nextMetadata("own"), "the most common")
}
