package redistest

import (
	"fmt"
	"strconv"
	"strings"
)

// infoField returns one field of an INFO section of s.
func infoField(s *Server, section, field string) (string, error) {
	out, err := s.Do("INFO", section)
	if err != nil {
		return "", err
	}
	return infoFields(out)[field], nil
}

// CPU returns the CPU time s has used so far, user and system, in
// seconds (INFO cpu): what a benchmark divides by its operations.
func (s *Server) CPU() (float64, error) {
	out, err := s.Do("INFO", "cpu")
	if err != nil {
		return 0, err
	}
	f := infoFields(out)
	var total float64
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		x, err := strconv.ParseFloat(f[k], 64)
		if err != nil {
			return 0, fmt.Errorf("redistest: INFO cpu: %s: %w", k, err)
		}
		total += x
	}
	return total, nil
}

// infoFields parses an INFO reply into its fields.
func infoFields(info string) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// records parses a Sentinel reply listing instances (SENTINEL REPLICAS,
// SENTINEL SENTINELS), which Do renders as their fields' names and values
// one a line, into one map per instance: each starts with "name".
func records(out string) []map[string]string {
	var recs []map[string]string
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		if lines[i] == "name" {
			recs = append(recs, make(map[string]string))
		}
		if len(recs) > 0 {
			recs[len(recs)-1][lines[i]] = lines[i+1]
		}
	}
	return recs
}
