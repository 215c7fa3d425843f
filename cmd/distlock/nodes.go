package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/distlock/distlock"
	"github.com/distlock/distlock/internal/server"
)

// config returns the Client configuration the flags and the environment
// say. The masters come from the first of --nodes, --nodes-file and
// DISTLOCK_NODES or DISTLOCK_NODES_FILE (not both) that is set, else the
// default.
func (f *flags) config() (distlock.Config, error) {
	list, from := f.nodes, "--nodes"
	var err error
	switch {
	case list != "":
	case f.nodesFile != "":
		from = "--nodes-file " + f.nodesFile
		list, err = readNodesFile(f.nodesFile)
	case os.Getenv("DISTLOCK_NODES") != "" && os.Getenv("DISTLOCK_NODES_FILE") != "":
		return distlock.Config{}, usagef("DISTLOCK_NODES and DISTLOCK_NODES_FILE are both set; set one")
	case os.Getenv("DISTLOCK_NODES") != "":
		list, from = os.Getenv("DISTLOCK_NODES"), "DISTLOCK_NODES"
	case os.Getenv("DISTLOCK_NODES_FILE") != "":
		from = "DISTLOCK_NODES_FILE " + os.Getenv("DISTLOCK_NODES_FILE")
		list, err = readNodesFile(os.Getenv("DISTLOCK_NODES_FILE"))
	default:
		from = ""
	}
	if err != nil {
		return distlock.Config{}, usagef("%s: %v", from, err)
	}
	f.from = from
	var nodes []string
	if strings.TrimSpace(list) != "" {
		for i, n := range strings.Split(list, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				return distlock.Config{}, usagef("%s: master %d of %q is empty (masters count from 0, as in every message)", from, i, redactList(list))
			}
			if k := len(nodes); k > 0 && commaInPassword(nodes[k-1], n) {
				return distlock.Config{}, usagef("%s: masters %d and %d are one URL whose password holds a ',' (%s): write it as %%2C", from, k-1, i, distlock.RedactNode(nodes[k-1]+","+n))
			}
			nodes = append(nodes, n)
		}
	}
	if err := distinctServers(nodes); err != nil {
		return distlock.Config{}, usagef("%s: %v", from, err)
	}
	if f.prefix == "" {
		return distlock.Config{}, usagef("--prefix must not be empty")
	}
	return distlock.Config{Nodes: nodes, KeyPrefix: f.prefix}, nil
}

// readNodesFile returns the masters listed in the file at path, one per
// line or separated by commas, joined by commas. Blank lines and text
// from a # on are skipped.
func readNodesFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var nodes []string
	for _, line := range strings.Split(string(data), "\n") {
		// A comment starts with '#' at the start of a line or after a
		// blank: a '#' inside a URL (a password) is not one, and is
		// refused whole with the rest of the entry, its password hidden
		// (TestUsePasswordNeverPrinted).
		for i := range len(line) {
			if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
				line = line[:i]
				break
			}
		}
		for _, n := range strings.Split(line, ",") {
			if n = strings.TrimSpace(n); n != "" {
				nodes = append(nodes, n)
			}
		}
	}
	if len(nodes) == 0 {
		return "", errors.New("no masters in the file")
	}
	return strings.Join(nodes, ","), nil
}

// commaInPassword reports whether next, an entry of a list of masters,
// is the rest of prev, split at a ',' in its password: next has an '@'
// but no scheme (no host:port holds an '@'), and prev is a URL with no
// '@' in it. Read on its own, prev may pass for a host and port (a
// password of digits, "redis://u:4821"), and be dialled, and quoted in
// its errors.
func commaInPassword(prev, next string) bool {
	return strings.Contains(prev, "://") && !strings.Contains(prev, "@") &&
		!strings.Contains(next, "://") && strings.Contains(next, "@")
}

// redactList returns a list of masters with the passwords in it hidden.
// The library's distlock.RedactNode reads the text, so it hides the
// password of an entry that does not parse too.
func redactList(list string) string {
	var out []string
	for _, n := range strings.Split(list, ",") {
		out = append(out, distlock.RedactNode(strings.TrimSpace(n)))
	}
	return strings.Join(out, ",")
}

// distinctServers reports two entries of nodes that name one server
// (host and port; "localhost", 127.0.0.1 and ::1 are one host): a lock
// counted twice on one server would need one master less than a
// majority of the servers.
func distinctServers(nodes []string) error {
	addrs := make([][]string, len(nodes))
	for i, n := range nodes {
		if a, ok := hostPort(n); ok { // else New says what is wrong with it
			addrs[i] = []string{a}
		}
	}
	if j, i, same := server.Same(addrs); same {
		return fmt.Errorf("masters %d and %d (%s, %s) are the same server; a lock needs a majority of independent masters", j, i, redactList(nodes[j]), redactList(nodes[i]))
	}
	return nil
}

// hostPort returns the host:port of a master's URL, or node itself when
// it is a host:port.
func hostPort(node string) (string, bool) {
	if !strings.Contains(node, "://") {
		return node, true
	}
	u, err := url.Parse(node)
	if err != nil {
		return "", false
	}
	return u.Host, true
}

// connect returns a Client for cfg. Configuration errors (a bad node URL,
// a bad TTL) are usage errors; masters that cannot be reached are not.
func (f *flags) connect(cfg distlock.Config) (*distlock.Client, error) {
	c, err := distlock.New(cfg)
	if err == nil {
		return c, nil
	}
	if errors.Is(err, distlock.ErrNoQuorum) {
		return nil, err
	}
	if f.from == "" {
		return nil, usagef("%v", err)
	}
	return nil, usagef("%v (masters from %s)", err, f.from)
}

// dialing is a Client being made in the background (connectAsync), so
// that a command can stop waiting for masters that do not answer: New
// waits up to its dial timeout for a majority and takes no context.
type dialing struct {
	done <-chan dialed // gets the outcome once
}

// dialed is what connect returned.
type dialed struct {
	c   *distlock.Client
	err error
}

// connectAsync starts connect(cfg) in the background.
func (f *flags) connectAsync(cfg distlock.Config) dialing {
	ch := make(chan dialed, 1)
	go func() {
		c, err := f.connect(cfg)
		ch <- dialed{c, err}
	}()
	return dialing{done: ch}
}

// abandon gives the Client up: once made, it is closed (the process is
// about to exit; a test calling this in-process leaks nothing).
func (d dialing) abandon() {
	go func() {
		if m := <-d.done; m.c != nil {
			m.c.Close()
		}
	}()
}
