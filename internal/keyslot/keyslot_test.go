package keyslot

import "testing"

func TestSlot(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for _, tc := range []struct {
		key  string
		want uint16
	}{
		{"123456789", 0x31C3 % Slots},
		{"foo", 12182},
		{"bar", 5061},
		{"{user1000}.following", Slot("user1000")},
		{"foo{}{bar}", Slot("foo{}{bar}")}, // empty tag: the whole key counts
		{"foo{{bar}}zap", Slot("{bar")},
	} {
		if got := Slot(tc.key); got != tc.want {
			t.Errorf("Slot(%q) = %d; want %d", tc.key, got, tc.want)
		}
	}
	if Slot("foo{}{bar}") == Slot("bar") {
		t.Errorf("Slot(%q) used the second tag; want the whole key", "foo{}{bar}")
	}
}

func TestTag(t *testing.T) {
	for s := range Slots {
		tag := Tag(uint16(s))
		if tag == "" || len(tag) > 4 {
			t.Fatalf("Tag(%d) = %q; want 1 to 4 characters", s, tag)
		}
		if got := Slot("prefix:{" + tag + "}"); got != uint16(s) {
			t.Fatalf("Slot of tag %q = %d; want %d", tag, got, s)
		}
	}
}
