package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Do sends one command to the server over a new connection and returns
// the reply rendered as a string: a simple or bulk string as is, an
// integer in decimal, a nil reply as "", and an array as its elements
// joined by "\n". An error reply is returned as an error. The whole
// exchange must finish within two seconds, so Do fails rather than hangs
// against a paused server.
//
// Do is meant for inspecting a server from tests (GET, PTTL, KEYS, INFO,
// CONFIG SET ...), independently of the client under test, so it uses its
// own minimal RESP2 implementation. If Options.Args set --requirepass, Do
// authenticates first on the same connection; with Options.User, as that
// user, or as AdminUser when Options.Rules restrict it.
//
// Do's own commands show up in INFO commandstats, as do the PING and INFO
// with which Start and Restart probe the server; a test that counts
// commands should take a baseline or run CONFIG RESETSTAT first.
func (s *Server) Do(args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("redistest: Do: no command")
	}
	deadline := time.Now().Add(doTimeout)
	d := &net.Dialer{Deadline: deadline}
	var conn net.Conn
	var err error
	if s.opts.TLS != nil {
		td := tls.Dialer{NetDialer: d, Config: s.opts.TLS.ClientConfig()}
		conn, err = td.Dial("tcp", s.addr)
	} else {
		conn, err = d.Dial("tcp", s.addr)
	}
	if err != nil {
		return "", fmt.Errorf("redistest: %s: %w", args[0], err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)

	var req []byte
	switch {
	case s.opts.User != "" && s.opts.Rules != nil:
		req = appendCommand(req, "AUTH", AdminUser, adminPassword)
	case s.opts.User != "":
		req = appendCommand(req, "AUTH", s.opts.User, s.password)
	case s.password != "":
		req = appendCommand(req, "AUTH", s.password)
	}
	req = appendCommand(req, args...)
	if _, err := conn.Write(req); err != nil {
		return "", fmt.Errorf("redistest: %s: %w", args[0], err)
	}
	r := bufio.NewReader(conn)
	if s.opts.User != "" || s.password != "" {
		if _, err := readReply(r); err != nil {
			return "", fmt.Errorf("redistest: AUTH: %w", err)
		}
	}
	reply, err := readReply(r)
	if err != nil {
		return "", fmt.Errorf("redistest: %s: %w", args[0], err)
	}
	return reply, nil
}

// appendCommand appends args to b encoded as a RESP2 array of bulk strings,
// the form Redis expects from clients.
func appendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// maxBulk bounds bulk and array lengths so that a corrupt stream cannot
// make readReply allocate without limit. It is Redis's own
// proto-max-bulk-len default.
const maxBulk = 512 << 20

// A replyError is an error reply from the server, such as
// "WRONGTYPE Operation against a key holding the wrong kind of value".
type replyError string

func (e replyError) Error() string { return string(e) }

// readReply reads one RESP2 reply from r and renders it as described
// for Do.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return "", fmt.Errorf("malformed reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return "", replyError(body)
	case ':':
		if _, err := strconv.ParseInt(body, 10, 64); err != nil {
			return "", fmt.Errorf("malformed integer reply %q", body)
		}
		return body, nil
	case '$':
		return readBulk(r, body)
	case '*':
		return readArray(r, body)
	default:
		return "", fmt.Errorf("unsupported reply type %q", kind)
	}
}

// readBulk reads the rest of a bulk string reply from r, whose header
// line said length; a nil bulk string is "".
func readBulk(r *bufio.Reader, length string) (string, error) {
	n, err := strconv.Atoi(length)
	if err != nil || n < -1 || n > maxBulk {
		return "", fmt.Errorf("malformed bulk length %q", length)
	}
	if n == -1 {
		return "", nil
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return "", errors.New("bulk string not terminated by CRLF")
	}
	return string(buf[:n]), nil
}

// readArray reads the elements of an array reply from r, whose header
// line said length, and joins them with "\n"; a nil array is "".
func readArray(r *bufio.Reader, length string) (string, error) {
	n, err := strconv.Atoi(length)
	if err != nil || n < -1 || n > maxBulk {
		return "", fmt.Errorf("malformed array length %q", length)
	}
	elems := make([]string, 0, max(n, 0))
	var firstErr error
	for range n {
		// Read every element even after an error reply so that the
		// stream stays in sync; report the first error.
		e, err := readReply(r)
		if err != nil {
			var re replyError
			if !errors.As(err, &re) {
				return "", err
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		elems = append(elems, e)
	}
	if firstErr != nil {
		return "", firstErr
	}
	return strings.Join(elems, "\n"), nil
}
