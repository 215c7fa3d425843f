package distlock

import "testing"

// reservedKey says which keys are distlock's own: exactly those checkKey
// refuses as lock keys, so that a key-change message naming one can be
// passed over without looking for a lease (keyEvents.changed).
func TestReservedKey(t *testing.T) {
	for _, key := range []string{
		"distlock:fence:{abc}", "distlock:fence:dead:{abc}x", "distlock:fence:left:{a}distlock:job",
		"distlock:wait:{a}distlock:job", "distlock:lapse:{a}distlock:job",
		"distlock:job", "distlock:", "distlock:fenc", "app:fence:{abc}", "fence:x", "", "distlock:fencing",
	} {
		reserved := reservedKey(key)
		if refused := checkKey(key) != nil; refused != reserved {
			t.Errorf("%q: reservedKey %v, checkKey refuses it %v; want the same", key, reserved, refused)
		}
	}
	if !reservedKey("distlock:fence:{abc}") || reservedKey("distlock:job") {
		t.Error("reservedKey: a fence counter is reserved, a lock key is not")
	}
}
