// Package keyslot computes Redis Cluster hash slots, and for each slot a
// short hash tag that maps to it.
//
// distlock keeps one fence counter per hash slot rather than one per lock
// name (see fencing.go in the root package). Putting the counter in the
// lock key's own slot lets one Lua script touch both keys even when a
// "master" is a Redis Cluster, and bounds the counters to 16384 per key
// prefix however many lock names there are.
package keyslot

import (
	"strconv"
	"strings"
	"sync"
)

// Slots is the number of hash slots in Redis Cluster.
const Slots = 16384

// Slot returns the hash slot of key, as Redis Cluster computes it: CRC16
// (XMODEM) of the hash tag when the key has a non-empty one ("{...}"),
// else of the whole key, modulo 16384.
func Slot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % Slots
}

// Tag returns a short string whose hash slot is slot: a key containing
// "{"+Tag(s)+"}" lives in slot s.
func Tag(slot uint16) string { return tags()[slot%Slots] }

// tags is built once, on first use: base-36 strings in order of length until
// every slot has one (about 120,000 CRCs, a few milliseconds).
var tags = sync.OnceValue(func() *[Slots]string {
	var t [Slots]string
	left := Slots
	for n := uint64(0); left > 0; n++ {
		s := strconv.FormatUint(n, 36)
		if slot := crc16(s) % Slots; t[slot] == "" {
			t[slot] = s
			left--
		}
	}
	return &t
})

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), the checksum
// Redis Cluster uses for key slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
