package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// The fenced store: the resource the lock protects. It accepts a write only
// when the write's token is at least the highest it has accepted; since
// every lease has a token of its own, that is: higher than every other
// lease's accepted token. It records every critical section and every
// write, accepted or not, for the checks.
//
// Workers in the test process call it directly; child processes reach it
// over HTTP on a loopback port.

// A section is one critical section: one lease, from the moment Do ran the
// function until the holder stopped. Times are Unix nanoseconds, read in
// the worker's process (one machine, one clock).
type section struct {
	ID       int64  `json:"id"`
	Proc     int    `json:"proc"` // 0: the test process; k: child process k
	Worker   string `json:"worker"`
	Token    uint64 `json:"token"`
	AcqStart int64  `json:"acqStart"` // Do called: the Acquire began
	Start    int64  `json:"start"`    // the function began: Acquire returned
	// LastHeld is when the holder last confirmed it held the lease: the
	// time read just before a Lease.Err that returned nil. The holder acts
	// (writes) only right after such a check, so [Start, LastHeld] is the
	// span in which it acted as holder. 0: it never confirmed.
	LastHeld int64 `json:"lastHeld"`
	// Stop is when the holder stopped: the function returned, or, when the
	// lease was lost, the moment the holder noticed (Done or Err).
	Stop int64 `json:"stop"`
	// Lost: the lease ended before the section did. Deadline is then the
	// lease's validity end (Lease.Deadline), to measure how late the
	// holder noticed.
	Lost     bool  `json:"lost"`
	Deadline int64 `json:"deadline"`
	// Mode: how the worker took the lease (modeDo, modeAcquire).
	Mode string `json:"mode"`
	// Extends: Extend calls in the section, how many asked for a TTL
	// shorter than the acquire's, and how many returned an error.
	Extends        int `json:"extends,omitempty"`
	ExtendsShorter int `json:"extendsShorter,omitempty"`
	ExtendsFailed  int `json:"extendsFailed,omitempty"`
	// ReleaseLost: Release reported ErrLeaseLost although the section's
	// last check saw the lease held (it was lost in between).
	ReleaseLost bool `json:"releaseLost,omitempty"`
	// Violation is set by the worker when a Lease broke its contract:
	// Err nil after the process was paused for longer than the TTL, or
	// past Deadline; a Deadline beyond a successful Extend's TTL; Release
	// of a lost lease not reporting it, a second Release failing.
	Violation string `json:"violation,omitempty"`
}

// A write is one write to the store.
type write struct {
	Section  int64  `json:"section"`
	Proc     int    `json:"proc"`
	Token    uint64 `json:"token"`
	Checked  int64  `json:"checked"` // the holder's check before sending it
	Received int64  `json:"received"`
	Accepted bool   `json:"accepted"`
}

// A pauseReport is a worker about to stop itself between its check and its
// write, as asked.
type pauseReport struct {
	Proc    int    `json:"proc"`
	Section int64  `json:"section"`
	Token   uint64 `json:"token"`
	Checked int64  `json:"checked"`
}

// recorder is what a worker needs of the store.
type recorder interface {
	begin(s section) (id int64, err error)
	write(w write) (accepted, pause bool, err error)
	// pausing reports a self-pause; false: do not pause (the phase ends).
	pausing(p pauseReport) (bool, error)
	end(s section) error
}

type store struct {
	mu       sync.Mutex
	nextID   int64
	max      uint64             // highest token accepted
	open     map[int64]*section // begun, not ended
	sections []section          // ended
	writes   []write
	acqStart map[int64]int64 // section: its AcqStart, for acceptedSince
	newest   int64           // latest AcqStart among sections with an accepted write
	pauseReq map[int]bool    // proc: asked to pause itself at its next write
	ending   bool            // no more self-pauses
	pauses   chan pauseReport
}

func newStore() *store {
	return &store{
		open:     make(map[int64]*section),
		acqStart: make(map[int64]int64),
		pauseReq: make(map[int]bool),
		pauses:   make(chan pauseReport, 16),
	}
}

func (s *store) begin(sec section) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	sec.ID = s.nextID
	s.open[sec.ID] = &sec
	s.acqStart[sec.ID] = sec.AcqStart
	return sec.ID, nil
}

func (s *store) write(w write) (bool, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Received = time.Now().UnixNano()
	w.Accepted = w.Token >= s.max
	if w.Accepted {
		s.max = w.Token
		s.newest = max(s.newest, s.acqStart[w.Section])
	}
	s.writes = append(s.writes, w)
	pause := s.pauseReq[w.Proc] && !s.ending
	delete(s.pauseReq, w.Proc)
	return w.Accepted, pause, nil
}

func (s *store) pausing(p pauseReport) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ending {
		return false, nil
	}
	select {
	case s.pauses <- p:
		return true, nil
	default: // nobody is waiting for it
		return false, nil
	}
}

func (s *store) end(sec section) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.open[sec.ID]; !ok {
		return fmt.Errorf("section %d ended twice or never begun", sec.ID)
	}
	delete(s.open, sec.ID)
	s.sections = append(s.sections, sec)
	return nil
}

// requestPause asks proc to stop itself between its next check and write.
func (s *store) requestPause(proc int) {
	s.mu.Lock()
	s.pauseReq[proc] = true
	s.mu.Unlock()
}

// acceptedSince reports whether the store accepted a write from a lease
// that began acquiring after t: a successor of a holder paused at t.
func (s *store) acceptedSince(t int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newest > t
}

// holding returns the open sections of proc that began before t.
func (s *store) holding(proc int, t int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sec := range s.open {
		if sec.Proc == proc && sec.Start < t {
			return true
		}
	}
	return false
}

// finish stops self-pauses and returns the history; sections still open
// are an error (a worker that never ended its section).
func (s *store) finish() ([]section, []write, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ending = true
	var err error
	if len(s.open) > 0 {
		err = fmt.Errorf("%d critical sections never ended", len(s.open))
	}
	return s.sections, s.writes, err
}

func (s *store) stopPauses() {
	s.mu.Lock()
	s.ending = true
	s.pauseReq = make(map[int]bool)
	s.mu.Unlock()
}

// serve exposes s over HTTP on a loopback port for child processes, until
// ctx ends; it returns the base URL and a function that waits for the
// server to stop.
func (s *store) serve(ctx context.Context) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	handle := func(path string, f func(body []byte) (any, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var buf bytes.Buffer
			buf.ReadFrom(r.Body)
			out, err := f(buf.Bytes())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			json.NewEncoder(w).Encode(out)
		})
	}
	handle("/begin", func(b []byte) (any, error) {
		var sec section
		if err := json.Unmarshal(b, &sec); err != nil {
			return nil, err
		}
		id, err := s.begin(sec)
		return id, err
	})
	handle("/write", func(b []byte) (any, error) {
		var w write
		if err := json.Unmarshal(b, &w); err != nil {
			return nil, err
		}
		acc, pause, err := s.write(w)
		return [2]bool{acc, pause}, err
	})
	handle("/pausing", func(b []byte) (any, error) {
		var p pauseReport
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, err
		}
		return s.pausing(p)
	})
	handle("/end", func(b []byte) (any, error) {
		var sec section
		if err := json.Unmarshal(b, &sec); err != nil {
			return nil, err
		}
		return true, s.end(sec)
	})
	srv := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	stop := func() {
		srv.Close()
		<-done
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// httpRecorder is the store as a child process sees it.
type httpRecorder struct {
	base   string
	client *http.Client
}

func newHTTPRecorder(base string) *httpRecorder {
	return &httpRecorder{base: base, client: &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16},
	}}
}

func (h *httpRecorder) call(path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	resp, err := h.client.Post(h.base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return errors.New(path + ": " + b.String())
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (h *httpRecorder) begin(s section) (int64, error) {
	var id int64
	err := h.call("/begin", s, &id)
	return id, err
}

func (h *httpRecorder) write(w write) (bool, bool, error) {
	var out [2]bool
	err := h.call("/write", w, &out)
	return out[0], out[1], err
}

func (h *httpRecorder) pausing(p pauseReport) (bool, error) {
	var ok bool
	err := h.call("/pausing", p, &ok)
	return ok, err
}

func (h *httpRecorder) end(s section) error {
	var ok bool
	return h.call("/end", s, &ok)
}

func (h *httpRecorder) close() { h.client.CloseIdleConnections() }
