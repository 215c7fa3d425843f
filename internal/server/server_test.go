package server

import "testing"

func TestKey(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"127.0.0.1:6379", "localhost:6379"},
		{"[::1]:7000", "127.0.0.2:7000"},
		{"LocalHost:7000", "localhost:7000"},
		{"redis.example:6379", "Redis.Example:6379"},
		{"10.0.0.1", "10.0.0.1:6379"},
		{"0.0.0.0:7000", "127.0.0.1:7000"},    // adversarial read 20
		{"[::]:7000", "localhost:7000"},       // operator use test
		{"localhost.:7000", "localhost:7000"}, // adversarial read 20
		{"127.0.0.1:07000", "127.0.0.1:7000"}, // operator use test
		{"db.example.:6379", "DB.example:6379"},
	} {
		if Key(tc.a) != Key(tc.b) {
			t.Errorf("Key(%q) = %q, Key(%q) = %q: want one server", tc.a, Key(tc.a), tc.b, Key(tc.b))
		}
	}
	for _, tc := range []struct{ a, b string }{
		{"127.0.0.1:6379", "127.0.0.1:6380"},
		{"10.0.0.1:6379", "10.0.0.2:6379"},
		{"a.example:6379", "b.example:6379"},
	} {
		if Key(tc.a) == Key(tc.b) {
			t.Errorf("Key(%q) = Key(%q) = %q: want two servers", tc.a, tc.b, Key(tc.a))
		}
	}
}

func TestSame(t *testing.T) {
	j, i, found := Same([][]string{{"10.0.0.1:6379"}, nil, {"10.0.0.2:6379"}, {"10.0.0.1"}})
	if !found || j != 0 || i != 3 {
		t.Errorf("Same: %d, %d, %v; want masters 0 and 3 (the master without an address passed over)", j, i, found)
	}
	if _, _, found := Same([][]string{{"a:1", "b:1"}, {"a:1"}, {"a:2"}}); found {
		t.Error("Same: masters with other addresses are not one server")
	}
}
