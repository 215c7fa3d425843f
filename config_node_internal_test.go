package distlock

import "testing"

// A redis:// URL without a port means 6379, as Redis URLs do (Config.Nodes);
// a bare host:port needs its port.
func TestParseNodeDefaultPort(t *testing.T) {
	for _, n := range []string{"redis://127.0.0.1/0", "rediss://u:p@db.example/2"} {
		opt, _, err := parseNode(n)
		if err != nil {
			t.Fatalf("parseNode(%q): %v", n, err)
		}
		if len(opt.InitAddress) != 1 || opt.InitAddress[0][len(opt.InitAddress[0])-5:] != ":6379" {
			t.Errorf("parseNode(%q): InitAddress %v; want port 6379", n, opt.InitAddress)
		}
	}
	if _, _, err := parseNode("127.0.0.1"); err == nil {
		t.Error(`parseNode("127.0.0.1"): nil error; want host:port asked for`)
	}
}

// The query options rueidis reads are taken when their values mean what
// they say; checkQuery refuses the rest (TestNewRejectsBadConfig).
func TestParseNodeQueryAccepted(t *testing.T) {
	for _, n := range []string{
		"redis://127.0.0.1:6380/0?protocol=2&client_cache=0&max_retries=0&client_name=job-1&dial_timeout=1s",
		"redis://127.0.0.1:6380?protocol=3&write_timeout=2s&db=1", // the database in the query alone
		"rediss://127.0.0.1:6380/0?skip_verify=true",
	} {
		if _, _, err := parseNode(n); err != nil {
			t.Errorf("parseNode(%q): %v; want it taken", n, err)
		}
	}
}
