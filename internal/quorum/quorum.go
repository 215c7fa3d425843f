// Package quorum holds the arithmetic of the Redlock algorithm: how many
// masters make a majority, and how long a lock is valid for after taking
// some time to acquire it.
package quorum

import "time"

// Majority returns the number of masters out of n that make a quorum:
// n/2+1. Any two majorities of the same n masters share at least one master,
// which is what makes both mutual exclusion and fencing tokens work.
func Majority(n int) int { return n/2 + 1 }

// ExpiryPrecision is how early a master may expire a key: Redis counts
// expiry in milliseconds, so a key set with PX t can vanish up to 1 ms
// before t has passed on the client's clock. antirez's reference
// implementation adds 2 ms to the drift for it; so do we.
const ExpiryPrecision = 2 * time.Millisecond

// Drift returns the margin subtracted from a lease's validity for clock
// drift between the client and the masters: ttl*factor plus the expiry
// precision. With factor 0.01 a 10 s lease gives up 102 ms.
func Drift(ttl time.Duration, factor float64) time.Duration {
	return time.Duration(float64(ttl)*factor) + ExpiryPrecision
}

// Validity returns how long a lock taken with ttl stays safely held, given
// that elapsed has passed since the first command was sent: ttl - elapsed -
// drift. The masters started counting ttl when each received its command,
// which was after the start, so every key lives at least until start+ttl
// (clock-rate drift aside, which the drift margin covers). A result <= 0
// means the lock must be treated as not acquired.
func Validity(ttl, elapsed time.Duration, factor float64) time.Duration {
	return ttl - elapsed - Drift(ttl, factor)
}
