package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distlock/distlock"
)

// libraryPrefix starts the library's error messages. Every message of
// distlock starts with "distlock CMD: " already, so it quotes the
// library's errors without it: "distlock run: no quorum of masters: ...",
// not "distlock run: distlock: no quorum of masters: ...".
const libraryPrefix = "distlock: "

// errText returns err's message as distlock's messages quote it: without
// libraryPrefix at the start of any of its lines (errors.Join puts each
// error on a line of its own).
func errText(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, libraryPrefix)
	}
	return strings.Join(lines, "\n")
}

// masterErrors lists the masters' errors in err (a *distlock.QuorumError)
// on one line.
func masterErrors(err error) string {
	var qe *distlock.QuorumError
	if !errors.As(err, &qe) {
		return oneLine(err)
	}
	var b strings.Builder
	for i, e := range qe.Errs {
		if e != nil {
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "master %d: %s", i, errText(e))
		}
	}
	return b.String()
}

// oneLine returns errText(err) with its lines joined.
func oneLine(err error) string {
	return strings.ReplaceAll(errText(err), "\n", "; ")
}
