package watch

// How says how a value went from one master.
type How int

const (
	// HowUnknown: it went, and the master did not say how (another value
	// replaced it, a read found the key gone before its known expiry
	// without a delete seen, ...).
	HowUnknown How = iota + 1
	// HowDeleted: a delete of the value (its holder's release, or another
	// client's DEL).
	HowDeleted
	// HowExpired: Redis expired (or evicted) the key.
	HowExpired
)

// Kind is the kind of a Change.
type Kind int

const (
	Acquired Kind = iota + 1 // a value became held by a majority
	Released                 // its hold ended, a majority saw its delete
	Expired                  // its hold ended otherwise
)

// A Report is one master's word about the key.
type Report struct {
	Master int
	// Known false: the master is unreachable (its connection is down);
	// Value and How are ignored. Its last word still stands, but no longer
	// counts as certain.
	Known bool
	// Value holds the key now; "" when it is free.
	Value string
	// How the value the master held before went, when this report says
	// it went (Value is another, or ""); 0 is HowUnknown.
	How How
}

// A Change is a change of the lock's state, to be emitted as an event.
type Change struct {
	Kind    Kind
	Value   string // the hold's value
	Masters int    // Acquired: masters that reported the value; else masters known to no longer hold it
	Initial bool   // the first state, found as the watch began: no change seen
}
