package distlock

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// Config.Nodes entries: parsing one into a master's client options, and
// hiding its password in messages.

// parseNode turns one Config.Nodes entry into client options and an address
// fit for error messages.
func parseNode(n string) (rueidis.ClientOption, string, error) {
	n = strings.TrimSpace(n)
	if n == "" {
		return rueidis.ClientOption{}, "", errors.New("empty address")
	}
	if !strings.Contains(n, "://") {
		if strings.Contains(n, "@") {
			// Perhaps user:pass@host:port: say nothing of what came before.
			return rueidis.ClientOption{}, "", errors.New("want host:port, or a redis:// URL to give a user or password")
		}
		host, port, err := net.SplitHostPort(n)
		if err != nil {
			// Not err itself: it quotes the whole address.
			return rueidis.ClientOption{}, "", fmt.Errorf("want host:port or a redis:// URL: %s", addrErrReason(err))
		}
		if err := checkPort(port); err != nil {
			return rueidis.ClientOption{}, "", err
		}
		if host == "" {
			return rueidis.ClientOption{}, "", errors.New("missing host")
		}
		return rueidis.ClientOption{InitAddress: []string{n}}, n, nil
	}
	u, err := url.Parse(n)
	if err != nil {
		// Never url.Parse's error: it quotes the piece it chokes on, which
		// is often the password ("invalid port \":s3cr\" after host").
		return rueidis.ClientOption{}, "", errMalformedURL
	}
	if u.User == nil && strings.Contains(n, "@") {
		// An '@' that did not end the user info: a password holding '/',
		// '?' or '#' cut the URL short, and what follows that character
		// was taken for a path, a query or a fragment, its first part
		// perhaps for host:port ("redis://app:12#34@host" parses, with
		// host "app" and port "12").
		return rueidis.ClientOption{}, "", errMalformedURL
	}
	if strings.Contains(n, "#") {
		// A fragment means nothing to Redis: a '#' is a password's.
		return rueidis.ClientOption{}, "", errMalformedURL
	}
	switch u.Scheme {
	case "redis", "rediss", "valkey", "valkeys":
	default:
		return rueidis.ClientOption{}, "", fmt.Errorf("unsupported scheme %q: want redis:// or rediss://", u.Scheme)
	}
	if u.Host == "" {
		return rueidis.ClientOption{}, "", errors.New("missing host")
	}
	if p := u.Port(); p != "" {
		if err := checkPort(p); err != nil {
			return rueidis.ClientOption{}, "", err
		}
	}
	if h := u.Hostname(); strings.Contains(h, ":") && !strings.HasPrefix(u.Host, "[") {
		// "host:1:2": Go reads port 2 of host "host:1", and rueidis then
		// dials that name. An IPv6 address goes in brackets.
		return rueidis.ClientOption{}, "", errors.New("invalid host: more than one ':' (an IPv6 address goes in brackets, [::1]:6379)")
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" && !isDigits(strings.TrimPrefix(db, "-")) {
		// Never rueidis.ParseURL's "invalid URL path: ..." (nor this
		// path): a list separated by ' ' or ';' instead of ',' puts the
		// next entry, and its password, in the path.
		if strings.Contains(db, "/") || strings.ContainsAny(db, " \t;") {
			return rueidis.ClientOption{}, "", errors.New("invalid database number: the path must be /DB, a number (several masters: separate them with ',')")
		}
		return rueidis.ClientOption{}, "", errors.New("invalid database number: the path must be /DB, a number")
	}
	// A query key rueidis does not know is ignored by it: a password put
	// there (?password=...) would go unused, and the master answer NOAUTH.
	// Go drops a pair it cannot parse (one with a ';') without a word, so
	// parse it here, and quote no value (nor a key with an encoded '=').
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return rueidis.ClientOption{}, "", errors.New("invalid query: options are separated by '&' (';' is not allowed)")
	}
	for k := range query {
		if !slices.Contains(urlQueryKeys, k) {
			k, _, _ = strings.Cut(k, "=")
			return rueidis.ClientOption{}, "", fmt.Errorf("unknown query option %q (rueidis options: %s; a password goes in redis://user:password@host)", k, strings.Join(urlQueryKeys, ", "))
		}
	}
	if err := checkQuery(query, u.Scheme); err != nil {
		return rueidis.ClientOption{}, "", err
	}
	if query.Has("db") && strings.TrimPrefix(u.Path, "/") != "" {
		// rueidis takes the query's and ignores the path's: the locks
		// would go to a database other than the one written first.
		return rueidis.ClientOption{}, "", errors.New("the database is given twice, in the path and as ?db=; give it once")
	}
	opt, err := rueidis.ParseURL(n)
	if err != nil {
		// Its messages quote the path or a query value, which can hold
		// a password; say which part is wrong, not what it holds.
		msg := "invalid query (rueidis options: db, dial_timeout, write_timeout, skip_verify...)"
		switch e := err.Error(); {
		case strings.Contains(e, "scheme"):
			msg = "unsupported scheme"
		case strings.Contains(e, "database number") && u.RawQuery == "":
			msg = "invalid database number: the path must be /DB, a number"
		}
		return rueidis.ClientOption{}, "", errors.New(msg)
	}
	if opt.SelectDB < 0 {
		return rueidis.ClientOption{}, "", fmt.Errorf("database %d must not be negative", opt.SelectDB)
	}
	return opt, fmt.Sprintf("%s://%s/%d", u.Scheme, opt.InitAddress[0], opt.SelectDB), nil
}

// urlQueryKeys are the query options rueidis.ParseURL reads (v1.0.79).
var urlQueryKeys = []string{"db", "dial_timeout", "write_timeout", "protocol", "client_name", "client_cache", "max_retries", "skip_verify", "addr", "master_set"}

// checkQuery reports which of a node URL's query options rueidis would
// take without a word but not as written: a value it reads as another
// (protocol=x is RESP3), one that distlock sets itself whatever the URL
// says, an option that does nothing on this scheme, a key given twice (the
// first counts). It quotes no value: one may hold a secret put in the
// wrong place.
func checkQuery(query url.Values, scheme string) error {
	for k, vs := range query {
		if len(vs) > 1 && k != "addr" {
			return fmt.Errorf("query option %s given %d times; give it once", k, len(vs))
		}
	}
	switch query.Get("protocol") {
	case "", "2", "3":
	default:
		return errors.New("query option protocol must be 2 (RESP2) or 3 (RESP3, the default)")
	}
	if query.Has("client_cache") && query.Get("client_cache") != "0" {
		return errors.New("query option client_cache: distlock turns rueidis's client-side cache off (it tracks lock keys itself); leave the option out")
	}
	if query.Has("max_retries") && query.Get("max_retries") != "0" {
		return errors.New("query option max_retries: distlock never lets rueidis retry a command (a retry could reach a master after a later command); leave the option out")
	}
	if query.Has("skip_verify") && scheme != "rediss" && scheme != "valkeys" {
		return errors.New("query option skip_verify applies to TLS only (rediss://)")
	}
	if v := query.Get("client_name"); strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		// CLIENT SETNAME refuses it, and every dial would fail.
		return errors.New("query option client_name must not contain spaces or control characters")
	}
	return nil
}

// isDigits reports whether s is one or more ASCII digits.
func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func checkPort(p string) error {
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q must be a number from 1 to 65535", p)
	}
	return nil
}

// errMalformedURL is what parseNode says of a URL that does not parse, or
// parses into something other than what its author meant. It quotes
// nothing of the URL.
var errMalformedURL = errors.New("malformed URL (in a user or password, percent-encode / ? # @ % , and spaces, e.g. '#' as %23, ',' as %2C)")

// addrErrReason is why net.SplitHostPort refused an address, without the
// address.
func addrErrReason(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return "malformed address"
}

// RedactNode returns a Config.Nodes entry with its password, and the
// values of its query options, hidden, for logs and messages. It hides the
// password of an entry that does not parse as well
// (TestSecurityNoPasswordInConfigErrors, TestRedactNodeQuery); distlock's
// own errors never carry a password. A query option rueidis does not read
// (such as ?password=) is refused by New.
func RedactNode(n string) string { return redact(n) }

// redact hides the password of a Config.Nodes entry, for error messages.
// It reads the text, not a parsed URL, so that it hides the password of
// an entry that does not parse as well: whatever lies between the
// scheme's "//" (or the start) and the last '@' is user information when
// it holds a ':', and all of it after that first ':' is replaced. The
// user stays, to tell which credentials were meant.
func redact(n string) string {
	n = redactQuery(n)
	start := 0
	if i := strings.Index(n, "://"); i > 0 && isScheme(n[:i]) {
		start = i + len("://")
	}
	at := strings.LastIndex(n[start:], "@")
	if at < 0 {
		return redactCut(n, start)
	}
	at += start
	colon := strings.Index(n[start:at], ":")
	if colon < 0 && start == 0 {
		// No scheme, yet an '@': no host:port holds one, so this is
		// the tail of a URL whose password held the ',' the list was
		// split at ("redis://u:pass,word@host"): all of it before the
		// '@' is password.
		return "xxxxx" + n[at:]
	}
	if colon < 0 {
		return n
	}
	return n[:start+colon] + ":xxxxx" + n[at:]
}

// redactQuery hides the values of a URL's query options, keeping their
// keys: "?password=..." holds a secret as often as not. The query is taken
// to start at the first '?', and a value to run to the next '&', whatever
// it holds ('?', '@'): where a raw '?' is in fact in the password, what
// follows it up to an '=' is kept, and redact hides the password. A pair
// whose '=' is percent-encoded is hidden from it on as well.
func redactQuery(n string) string {
	q := strings.Index(n, "?")
	if q < 0 {
		return n
	}
	pairs := strings.Split(n[q+1:], "&")
	for i, p := range pairs {
		if k, _, ok := strings.Cut(p, "="); ok {
			pairs[i] = k + "=xxxxx"
		} else if e := strings.Index(strings.ToUpper(p), "%3D"); e >= 0 {
			pairs[i] = p[:e] + "%3Dxxxxx"
		}
	}
	return n[:q+1] + strings.Join(pairs, "&")
}

// redactCut hides what may be the start of a password in a URL entry with
// no '@': a list split at a ',' inside a password leaves
// "redis://user:pass" of "redis://user:pass,word@host", whose "port" is
// not a number, or "redis://user:pa:55" of "redis://user:pa:55,x@host",
// two ':' where a host:port has one. (A password of digits alone,
// "redis://user:55", reads as a host and port: the CLI refuses the list
// it came from, cmd/distlock's commaInPassword.) start is where the
// authority begins (0: no scheme, not a URL, left alone).
func redactCut(n string, start int) string {
	if start == 0 {
		return n
	}
	auth := n[start:]
	if i := strings.IndexAny(auth, "/?#"); i >= 0 {
		auth = auth[:i]
	}
	if strings.HasPrefix(auth, "[") {
		return n // an IPv6 host, [::1]:6379
	}
	colon := strings.LastIndex(auth, ":")
	if colon < 0 || auth[colon+1:] == "" {
		return n
	}
	if first := strings.Index(auth, ":"); first < colon {
		// Two ':' in a host:port: "user:pa:ss", its tail read as a port
		// when digits ("redis://admin:Tr0ub4dor:3").
		colon = first
	} else if isDigits(auth[colon+1:]) {
		return n
	}
	return n[:start+colon] + ":xxxxx" + n[start+len(auth):]
}

// isScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.' (RFC 3986, section 3.1).
func isScheme(s string) bool {
	for i, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case i > 0 && ('0' <= r && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}
