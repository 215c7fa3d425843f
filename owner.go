package distlock

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Who holds a lock.
//
// A lock key's value is the lease's 128 random bits (32 hex digits: the
// part that lets the lease alone renew and delete its keys), then, where
// there is more to say, '|', the holder's owner (Config.Owner) and, when
// the Acquire gave one (WithMetadata), '|' and its metadata:
//
//	3f2a9c1b0d4e5f60718293a4b5c6d7e8|web-1:4242|job%2042
//
// Owner and metadata are escaped: '%', '|', space, and every byte that is
// not part of a printable UTF-8 character become %XX, so the stored string
// holds no space and no separator but its own (the scripts' messages,
// "expire <ttl> <value>", stay easy to split) and printable text, unicode
// included, reads as it is. The scripts compare the whole stored string,
// as they always have: nothing in the protocol changes, and no key or
// command is added. A value of 32 hex digits alone (a distlock from before
// owners) has owner and metadata "". Fields after the metadata are
// ignored, for a later distlock to add.
//
// The value is sent with every renewal (every third of a TTL, to every
// master) and published with each of the scripts' messages, so owner and
// metadata are bounded: MaxOwnerLen and MaxMetadataLen bytes.

const (
	// MaxOwnerLen is the longest Config.Owner, in bytes.
	MaxOwnerLen = 128
	// MaxMetadataLen is the longest WithMetadata, in bytes. The stored
	// value, sent with every renewal to every master, is then at most
	// about 2 KiB (every byte escaped), and usually a few dozen bytes.
	MaxMetadataLen = 512
)

const (
	// randomLen is the length of a lease value's random part: 128 bits in
	// hex.
	randomLen = 32
	// valueSep separates the random part, the owner and the metadata.
	valueSep = '|'
	// maxValueLen bounds a stored value distlock writes: the random part,
	// two separators, and owner and metadata each escaped byte for byte.
	maxValueLen = randomLen + 2 + 3*(MaxOwnerLen+MaxMetadataLen)
)

// defaultOwner returns the owner of a Config that names none:
// "hostname:pid", with the hostname cut short if it must be (it never is
// on Linux, where it has at most 64 bytes).
func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	pid := ":" + strconv.Itoa(os.Getpid())
	if len(host)+len(pid) > MaxOwnerLen {
		host = host[:MaxOwnerLen-len(pid)]
		for !utf8.ValidString(host) {
			host = host[:len(host)-1]
		}
	}
	owner := host + pid
	if checkOwner(owner) != nil {
		// A hostname with a character an owner may not have: keep the pid.
		owner = "unknown-host" + pid
	}
	return owner
}

// checkOwner reports why owner cannot be Config.Owner, or nil.
func checkOwner(owner string) error {
	if len(owner) > MaxOwnerLen {
		return fmt.Errorf("distlock: Config.Owner of %d bytes is longer than MaxOwnerLen (%d)", len(owner), MaxOwnerLen)
	}
	if !utf8.ValidString(owner) {
		return fmt.Errorf("distlock: Config.Owner %q is not valid UTF-8", owner)
	}
	for _, r := range owner {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("distlock: Config.Owner %q contains %U, which is not printable (a control character, or a space other than ' ')", owner, r)
		}
	}
	return nil
}

// checkMetadata reports why metadata cannot be given to WithMetadata, or
// nil.
func checkMetadata(metadata string) error {
	if len(metadata) > MaxMetadataLen {
		return fmt.Errorf("WithMetadata: %d bytes is longer than MaxMetadataLen (%d)", len(metadata), MaxMetadataLen)
	}
	return nil
}

// valueSuffix returns what follows the random part of a lease value of
// owner with metadata.
func valueSuffix(owner, metadata string) string {
	if owner == "" && metadata == "" {
		return ""
	}
	s := string(valueSep) + escapeField(owner)
	if metadata != "" {
		s += string(valueSep) + escapeField(metadata)
	}
	return s
}

// escapeField escapes one field of a lease value (see "Who holds a
// lock").
func escapeField(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == '%' || r == valueSep || r == ' ' || !unicode.IsPrint(r) {
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// unescapeField undoes escapeField; ok is false for a '%' not followed by
// two hex digits.
func unescapeField(s string) (_ string, ok bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		c, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(c))
		i += 2
	}
	return b.String(), true
}

// random returns the random part of lease value v: its first 32 hex
// digits.
func random(v string) string {
	if len(v) > randomLen {
		return v[:randomLen]
	}
	return v
}

// parseValue reads a lock key's value: the owner and metadata of the lease
// that stored it. ok is false when v is not a distlock lease value (another
// program's), and then both are "".
func parseValue(v string) (owner, metadata string, ok bool) {
	if len(v) < randomLen || !isHex(v[:randomLen]) {
		return "", "", false
	}
	if len(v) == randomLen {
		return "", "", true // an older distlock's
	}
	if v[randomLen] != valueSep {
		return "", "", false
	}
	fields := strings.Split(v[randomLen+1:], string(valueSep))
	owner, ok = unescapeField(fields[0])
	if ok && len(fields) > 1 {
		metadata, ok = unescapeField(fields[1])
	}
	if !ok {
		return "", "", false
	}
	return owner, metadata, true
}

// isHex reports whether s is lowercase hex digits only.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
