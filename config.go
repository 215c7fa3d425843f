package distlock

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/distlock/distlock/internal/server"
)

// Defaults for the zero values of [Config].
const (
	// DefaultNode is the master used when Config names none, as in the
	// Python distlock.
	DefaultNode = "redis://127.0.0.1:6379/0"
	// DefaultTTL is the lease TTL when neither Config.TTL nor WithTTL sets one.
	DefaultTTL = 10 * time.Second
	// DefaultKeyPrefix starts every key distlock writes.
	DefaultKeyPrefix = "distlock:"
	// DefaultDriftFactor is the share of the TTL given up for clock drift
	// between the client and the masters, as in antirez's reference
	// implementation.
	DefaultDriftFactor = 0.01
	// DefaultNodeTimeout bounds one command on one master. Acquire uses
	// the smaller of it and a tenth of the lease TTL, so that a slow master
	// cannot eat the lease's validity. Renewals (background and Extend)
	// wait longer: as long as the lease's validity lasts.
	DefaultNodeTimeout = 250 * time.Millisecond
	// DefaultDialTimeout bounds connecting to one master.
	DefaultDialTimeout = 2 * time.Second
	// MaxNodes is the largest number of masters one Client takes: the
	// master's index fills the low 6 bits of each fencing token.
	MaxNodes = 64
	// MaxNameLen is the longest lock name, in bytes.
	MaxNameLen = 1024
)

// Config configures a [Client]. The zero value is valid: one master at
// [DefaultNode], leases of [DefaultTTL]. New copies what it needs and never
// writes to the Config it is given.
type Config struct {
	// Nodes lists the masters, each as "redis://[user:pass@]host:port/db"
	// (a URL without a port means 6379: TestParseNodeDefaultPort),
	// "rediss://..." (TLS) or "host:port" (the port required). The masters
	// must be independent: not replicas of each other, not shards of one
	// cluster. New refuses two that name one server, however spelt (two
	// databases of it, or localhost and 127.0.0.1), and two that turn out
	// to be one server as New connects (a DNS alias, a proxy: the same
	// run_id in INFO server, TestSameServerBehindProxyRefused). A master
	// first reached after New returned, and found to be another's server,
	// is logged as an error, not refused; a server restarted or a name
	// moved to another server later is not checked again. Use an odd number, 3
	// or 5; a lock needs a majority of them. Empty means [DefaultNode].
	// Set Nodes or NodeOptions, not both.
	//
	// A URL's query takes rueidis's options (db, dial_timeout,
	// write_timeout, protocol, client_name, skip_verify, addr, master_set).
	// New refuses any other key (a password goes before the host), a value
	// rueidis would read as another (protocol other than 2 or 3),
	// skip_verify without TLS, and client_cache or max_retries other than
	// 0: distlock turns both off itself (TestNewRejectsBadConfig).
	Nodes []string

	// NodeOptions gives one rueidis.ClientOption per master instead of
	// Nodes, for what a URL cannot say: a Sentinel group or a Cluster as
	// one master, TLS settings, credentials from a function. distlock
	// overrides these fields of each: DisableRetry (a timed-out acquire may
	// have run; it must never be sent twice), PipelineMultiplex,
	// AlwaysPipelining, DisableAutoPipelining and BlockingPipeline (one
	// pipelined connection per master, so that commands reach a master in
	// the order they were sent, and its key-change messages are read), and
	// DisableCache, ClientTrackingOptions and OnInvalidations (key
	// tracking for DisableLossEvents; distlock never uses DoCache).
	NodeOptions []rueidis.ClientOption

	// TTL is the lease TTL when Acquire is given no WithTTL. Default
	// DefaultTTL.
	TTL time.Duration

	// KeyPrefix starts every lock key: the lock "job" is the key
	// KeyPrefix+"job". distlock's own keys are derived from the full lock
	// key, whatever the prefix, under [ReservedKeyspace]: fence counters
	// "distlock:fence:{tag}" and the waiting lists
	// "distlock:wait:{tag}"+key and "distlock:lapse:{tag}"+key, tag naming
	// the lock key's hash slot. It must not contain '{' or '}', nor start
	// with a reserved key space. Default DefaultKeyPrefix.
	//
	// Before 0.9 a custom prefix kept its counters under
	// KeyPrefix+"fence:{tag}": a counter new on a master starts above
	// that one, so tokens keep rising across the upgrade, provided every
	// Client of the prefix is upgraded together.
	KeyPrefix string

	// DriftFactor is the share of the TTL given up for clock drift between
	// the client and the masters; see Lease for the arithmetic. Default
	// DefaultDriftFactor; it must be in [0, 0.5).
	DriftFactor float64

	// NodeTimeout bounds one command on one master. Default: the smaller
	// of DefaultNodeTimeout and a tenth of the lease's TTL. A renewal
	// waits for a master's answer as long as the lease's validity lasts
	// (less drift), and at least NodeTimeout. Tokens rise in the order
	// leases are handed out while it is under a quarter of every TTL used
	// on a name, Extend's included (fencing.go); New refuses only a TTL of
	// at most twice NodeTimeout.
	NodeTimeout time.Duration

	// DialTimeout bounds connecting to one master. Default DefaultDialTimeout.
	DialTimeout time.Duration

	// SkipNotifyConfig stops Watch (and waiting Acquires) from running
	// CONFIG SET notify-keyspace-events on the masters, for servers where
	// CONFIG is not allowed (managed Redis, ACLs). Set
	// notify-keyspace-events to include "Kgx" (or "KA") on the masters
	// yourself; without it Watch still reports acquire, renewal and release
	// (distlock's scripts publish them) and expiry (read at the holder's
	// known expiry), but not other clients' writes, and Clients on
	// different databases of one server need different KeyPrefixes.
	SkipNotifyConfig bool

	// DisableLossEvents stops leases from hearing at once that their keys
	// were deleted, overwritten, expired or flushed: each master's
	// connection then tracks no keys (CLIENT TRACKING), and a lease's
	// loss is found by its next renewal, up to a third of its TTL later.
	// By default a lease whose keys a majority no longer holds is lost
	// within milliseconds (docs/design.md, "Loss events"); masters that
	// cannot track keys (a Sentinel group, RESP2, an ACL without CLIENT
	// TRACKING) fall back to renewals on their own.
	DisableLossEvents bool

	// RetryMinDelay and RetryMaxDelay bound the exponential backoff
	// between attempts of a waiting Acquire, before its jitter of ±50%:
	// one wait lasts from RetryMinDelay/2 up to 1.5*RetryMaxDelay.
	// Defaults 5ms and 250ms.
	// A waiter behind another in the masters' line is woken when it is
	// first, and meanwhile retries every half to whole RetryMaxDelay, to
	// keep its place: a place not renewed lapses after max(1s,
	// 4*RetryMaxDelay).
	RetryMinDelay time.Duration
	RetryMaxDelay time.Duration

	// TracerProvider receives spans for acquire (one per Acquire or
	// TryAcquire, with an event per attempt), release, extend, background
	// renewal and fence write-back, each master's error recorded on them.
	// Nil: no spans, at no cost. To use the global provider, pass
	// otel.GetTracerProvider(). See "Observability" in the package
	// documentation.
	TracerProvider trace.TracerProvider

	// MeterProvider receives distlock's metrics (distlock.*). Nil: none, at
	// no cost. To use the global provider, pass otel.GetMeterProvider().
	MeterProvider metric.MeterProvider

	// Owner names this Client as the holder of its locks, for whoever
	// finds a lock held and wants to know which process to look at: it is
	// stored with every lease's value on the masters, and Status, Watch
	// events, Lease.Owner and the command line show it. Default
	// "hostname:pid" of the process. At most MaxOwnerLen (128) bytes of
	// printable UTF-8 (no control characters). It is public: anyone who
	// can read the lock keys, or subscribe to their channels, reads it;
	// never put a secret in it.
	Owner string

	// FenceReplicas, when above 0, makes each master confirm that this
	// many of its replicas have a fence counter before a token drawn from
	// it is handed out. For masters that replicate asynchronously (a
	// Sentinel-managed group, a Cluster shard), whose failover can lose
	// the latest writes and with them counter increments, so that a later
	// token comes out lower than one already handed out. After each script
	// that draws a counter or writes it back (not a release's raise of it)
	// distlock sends WAIT FenceReplicas on
	// the same connection, with a timeout within the per-master timeout; a
	// master whose replicas do not all acknowledge in time counts as
	// failed for that acquire (ErrNotReplicated), and its keys are cleaned
	// up. Every master must then have at least FenceReplicas replicas, or
	// it never counts. It costs the replicas' round trip on each acquire.
	// 0 (the default): nothing is waited for, nothing more is sent. See
	// docs/deployments.md.
	FenceReplicas int

	// Logger receives what an operator must see: a master that stops or
	// starts answering, a lease lost, a watch connection lost and
	// subscribed again. Nil: silent.
	Logger *slog.Logger
}

// settings is a Config with the defaults filled in and the masters parsed.
type settings struct {
	nodes             []rueidis.ClientOption
	addrs             []string // per master, for errors: no credentials
	ttl               time.Duration
	prefix            string
	driftFactor       float64
	nodeTimeout       time.Duration // 0: derive from the TTL
	dialTimeout       time.Duration
	retryMinDelay     time.Duration
	retryMaxDelay     time.Duration
	skipNotifyConfig  bool
	disableLossEvents bool
	owner             string
	ownerSuffix       string // the lease values' suffix without metadata (owner.go)
	fenceReplicas     int
}

// settings returns cfg with the defaults filled in, checked, and its
// masters parsed and set up for distlock's use of them.
func (cfg *Config) settings() (*settings, error) {
	s := &settings{
		ttl:               cfg.TTL,
		prefix:            cfg.KeyPrefix,
		driftFactor:       cfg.DriftFactor,
		nodeTimeout:       cfg.NodeTimeout,
		dialTimeout:       cfg.DialTimeout,
		retryMinDelay:     cfg.RetryMinDelay,
		retryMaxDelay:     cfg.RetryMaxDelay,
		skipNotifyConfig:  cfg.SkipNotifyConfig,
		disableLossEvents: cfg.DisableLossEvents,
		owner:             cfg.Owner,
		fenceReplicas:     cfg.FenceReplicas,
	}
	s.fillDefaults()
	if err := CheckKeyPrefix(s.prefix); err != nil {
		return nil, err
	}
	if err := checkOwner(s.owner); err != nil {
		return nil, err
	}
	s.ownerSuffix = valueSuffix(s.owner, "")
	if err := s.checkTimes(); err != nil {
		return nil, err
	}
	if s.fenceReplicas < 0 {
		return nil, fmt.Errorf("distlock: Config.FenceReplicas %d must not be negative", s.fenceReplicas)
	}
	var err error
	if s.nodes, s.addrs, err = cfg.masters(); err != nil {
		return nil, err
	}
	if err := checkMasters(s.nodes); err != nil {
		return nil, err
	}
	for i := range s.nodes {
		setUp(&s.nodes[i], s.dialTimeout)
	}
	return s, nil
}

// fillDefaults replaces the zero values of s's settings that have a
// default with it.
func (s *settings) fillDefaults() {
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.prefix == "" {
		s.prefix = DefaultKeyPrefix
	}
	if s.driftFactor == 0 {
		s.driftFactor = DefaultDriftFactor
	}
	if s.dialTimeout == 0 {
		s.dialTimeout = DefaultDialTimeout
	}
	if s.retryMinDelay == 0 {
		s.retryMinDelay = 5 * time.Millisecond
	}
	if s.retryMaxDelay == 0 {
		s.retryMaxDelay = 250 * time.Millisecond
	}
	if s.owner == "" {
		s.owner = defaultOwner()
	}
}

// CheckKeyPrefix reports why prefix cannot be Config.KeyPrefix, or nil:
// New checks it the same way. Like CheckName, it lets a program (such as
// a command line) refuse a bad prefix before it connects.
func CheckKeyPrefix(prefix string) error {
	for _, p := range reservedPrefixes {
		if r := ReservedKeyspace + p; strings.HasPrefix(prefix, r) {
			return fmt.Errorf("distlock: Config.KeyPrefix %q starts with %q, which is reserved for distlock's own keys", prefix, r)
		}
	}
	if strings.ContainsAny(prefix, "{}") {
		return fmt.Errorf("distlock: Config.KeyPrefix %q must not contain '{' or '}' (they would change the keys' hash slot)", prefix)
	}
	return nil
}

// checkTimes reports why s's drift factor, timeouts, retry delays or TTL
// are not valid, or nil.
func (s *settings) checkTimes() error {
	if !(s.driftFactor >= 0 && s.driftFactor < 0.5) { // NaN too
		return fmt.Errorf("distlock: Config.DriftFactor %v must be in [0, 0.5)", s.driftFactor)
	}
	if s.nodeTimeout < 0 {
		return fmt.Errorf("distlock: Config.NodeTimeout %v must not be negative", s.nodeTimeout)
	}
	if s.dialTimeout < 0 {
		return fmt.Errorf("distlock: Config.DialTimeout %v must not be negative", s.dialTimeout)
	}
	if s.retryMinDelay < 0 || s.retryMaxDelay < s.retryMinDelay {
		return fmt.Errorf("distlock: Config.RetryMinDelay %v and RetryMaxDelay %v must satisfy 0 <= min <= max", s.retryMinDelay, s.retryMaxDelay)
	}
	if err := checkTTL(s.ttl, s.driftFactor, s.nodeTimeout); err != nil {
		return fmt.Errorf("distlock: Config.TTL: %w", err)
	}
	return nil
}

// masters returns the client options of the masters cfg names, from
// NodeOptions or else from Nodes (DefaultNode when both are empty), and
// each one's address for error messages.
func (cfg *Config) masters() (nodes []rueidis.ClientOption, addrs []string, err error) {
	switch {
	case len(cfg.Nodes) > 0 && len(cfg.NodeOptions) > 0:
		return nil, nil, errors.New("distlock: Config sets both Nodes and NodeOptions; set one")
	case len(cfg.NodeOptions) > 0:
		for i, opt := range cfg.NodeOptions {
			if len(opt.InitAddress) == 0 {
				return nil, nil, fmt.Errorf("distlock: Config.NodeOptions[%d] has no InitAddress", i)
			}
			nodes = append(nodes, opt)
			addrs = append(addrs, strings.Join(opt.InitAddress, ","))
		}
		return nodes, addrs, nil
	}
	urls := cfg.Nodes
	if len(urls) == 0 {
		urls = []string{DefaultNode}
	}
	for i, n := range urls {
		opt, addr, err := parseNode(n)
		if err != nil {
			return nil, nil, fmt.Errorf("distlock: Config.Nodes[%d] %q: %w", i, redact(n), err)
		}
		opt.ForceSingleClient = opt.Sentinel.MasterSet == ""
		nodes = append(nodes, opt)
		addrs = append(addrs, addr)
	}
	return nodes, addrs, nil
}

// checkMasters reports why nodes cannot be a Client's masters, or nil:
// too many of them, or two on one server.
func checkMasters(nodes []rueidis.ClientOption) error {
	if len(nodes) > MaxNodes {
		return fmt.Errorf("distlock: %d masters configured; at most %d", len(nodes), MaxNodes)
	}
	// Two databases of one server fail together: not independent. Nor
	// are two spellings of one address (localhost and 127.0.0.1).
	addrs := make([][]string, len(nodes))
	for i, o := range nodes {
		addrs[i] = o.InitAddress
	}
	if j, i, same := server.Same(addrs); same {
		return fmt.Errorf("distlock: masters %d and %d (%s, %s) are one server; each must be a separate, independent server", j, i, strings.Join(addrs[j], ","), strings.Join(addrs[i], ","))
	}
	return nil
}

// setUp overrides the options of one master that distlock relies on (see
// Config.NodeOptions), and fills in its dial timeout and client name when
// not set.
func setUp(o *rueidis.ClientOption, dialTimeout time.Duration) {
	o.DisableRetry = true
	o.DisableCache = true // Client.New turns tracking on (lease_events.go)
	// One connection per master, always pipelined, so that commands
	// reach a master in the order they were sent: a clean-up DEL can
	// never overtake the acquire it undoes. (Without AlwaysPipelining,
	// rueidis sends a lone command synchronously and closes the
	// connection when its deadline passes; the next command then takes
	// a new connection and may run before the old one's last command.)
	o.PipelineMultiplex = -1
	o.AlwaysPipelining = true
	// Without auto-pipelining rueidis sends every command on a pooled
	// connection, one at a time: no order between them, and none reads
	// the key-change messages (TestNodeOptionsDisableAutoPipelining).
	o.DisableAutoPipelining = false
	// And every pipeline on it, however long: rueidis sends one of
	// BlockingPipeline commands or more (2,000 by default) on a pooled
	// connection of its own, where a batch of renewals could overtake a
	// command sent before it, and key tracking would send every message
	// once more (TestBigBatchOnOneConnection). distlock bounds its
	// batches itself (renew.go, maxBatch).
	o.BlockingPipeline = math.MaxInt
	if o.Dialer.Timeout == 0 {
		o.Dialer.Timeout = dialTimeout
	}
	if o.ClientName == "" {
		o.ClientName = "distlock"
	}
}

// checkTTL reports why ttl cannot be a lease TTL, or nil.
func checkTTL(ttl time.Duration, driftFactor float64, nodeTimeout time.Duration) error {
	switch {
	case ttl <= 0:
		return fmt.Errorf("TTL %v must be positive", ttl)
	case ttl < time.Millisecond:
		return fmt.Errorf("TTL %v is below Redis's 1ms expiry precision", ttl)
	case ttl <= driftOf(ttl, driftFactor):
		return fmt.Errorf("TTL %v is not larger than its clock-drift margin %v", ttl, driftOf(ttl, driftFactor))
	case nodeTimeout > 0 && nodeTimeout >= ttl/2:
		return fmt.Errorf("TTL %v must be more than twice Config.NodeTimeout %v", ttl, nodeTimeout)
	}
	return nil
}
