package distlock

// Queued returns how many goroutines of c hold or wait for name's turn
// (the local queue, retry.go), for tests that must know a goroutine waits.
func Queued(c *Client, name string) int {
	c.queue.mu.Lock()
	defer c.queue.mu.Unlock()
	if s := c.queue.slots[name]; s != nil {
		return s.refs
	}
	return 0
}
