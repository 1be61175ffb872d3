// Package fakesegment is a stand-in for Segment's HTTP tracking API (POST /v1/batch) on
// 127.0.0.1, for tests and the benchmark harness. It records what arrives per write key and can
// be told to fail, throttle or hang.
package fakesegment

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/switchboard-hub/switchboard/internal/delivery"
)

// Message is one message as received: Segment's message shape, defined once in delivery.
type Message = delivery.SegmentMessage

// Reply is how the fake answers one request.
type Reply struct {
	Status     int           // 0: 200
	RetryAfter string        // Retry-After header, if any
	Hang       time.Duration // wait this long (or until the client gives up) before answering
}

// Server is a running fake Segment.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	script   map[string][]Reply // per write key: replies to use before answering 200
	messages map[string][]Message
	requests map[string][]time.Time
	seen     map[string]struct{}             // every messageId, over all keys
	accepted struct{ requests, bytes int64 } // requests answered 200 and their body bytes
	// Behave, when set, decides the reply for every request (after the script is used up).
	behave func(writeKey string) Reply

	quit     chan struct{}
	quitOnce sync.Once

	// Lean keeps only each message's messageId (for load tests that count, not inspect).
	Lean   bool
	refuse func(Message) bool
}

// RefuseWhen makes a request that carries a message f returns true for answer 400 (as Segment
// does for a batch with an invalid message), storing none of the batch; nil refuses none.
func (s *Server) RefuseWhen(f func(Message) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = f
}

// Close ends hanging replies and stops the server.
func (s *Server) Close() {
	s.quitOnce.Do(func() { close(s.quit) })
	s.Server.CloseClientConnections()
	s.Server.Close()
}

// New starts a fake Segment on 127.0.0.1.
func New() *Server {
	s := &Server{script: map[string][]Reply{}, messages: map[string][]Message{}, requests: map[string][]time.Time{}, seen: map[string]struct{}{}, quit: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// Script queues replies for a write key's next requests.
func (s *Server) Script(writeKey string, replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script[writeKey] = append(s.script[writeKey], replies...)
}

// Behave sets a reply function used once a key's script is empty (nil: always 200).
func (s *Server) Behave(f func(writeKey string) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behave = f
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	key, _, ok := r.BasicAuth()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/batch" || !ok || key == "" {
		http.Error(w, `{"success": false}`, http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	s.requests[key] = append(s.requests[key], time.Now())
	reply := Reply{}
	if q := s.script[key]; len(q) > 0 {
		reply, s.script[key] = q[0], q[1:]
	} else if s.behave != nil {
		reply = s.behave(key)
	}
	s.mu.Unlock()
	if reply.Hang > 0 {
		select {
		case <-time.After(reply.Hang):
		case <-r.Context().Done():
			return
		case <-s.quit:
			return
		}
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		if reply.RetryAfter != "" {
			w.Header().Set("Retry-After", reply.RetryAfter)
		}
		http.Error(w, `{"success": false}`, reply.Status)
		return
	}
	var body struct {
		Batch []Message `json:"batch"`
	}
	counted := &countingReader{r: r.Body}
	if err := json.NewDecoder(counted).Decode(&body); err != nil {
		http.Error(w, `{"success": false, "error": "bad json"}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	refuse := s.refuse
	s.mu.Unlock()
	if refuse != nil {
		for _, m := range body.Batch {
			if refuse(m) {
				http.Error(w, `{"success": false, "message": "invalid message `+m.MessageID+`"}`, http.StatusBadRequest)
				return
			}
		}
	}
	s.mu.Lock()
	s.accepted.requests++
	s.accepted.bytes += counted.n
	for _, m := range body.Batch {
		s.seen[m.MessageID] = struct{}{}
	}
	if s.Lean {
		for _, m := range body.Batch {
			s.messages[key] = append(s.messages[key], Message{MessageID: m.MessageID})
		}
	} else {
		s.messages[key] = append(s.messages[key], body.Batch...)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"success": true}`))
}

// Messages returns the messages received with a write key, in arrival order.
func (s *Server) Messages(writeKey string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages[writeKey]...)
}

// Unique returns the distinct messageIds received with a write key.
func (s *Server) Unique(writeKey string) map[string]Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Message{}
	for _, m := range s.messages[writeKey] {
		out[m.MessageID] = m
	}
	return out
}

// Requests returns the arrival times of every request made with a write key.
func (s *Server) Requests(writeKey string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.requests[writeKey]...)
}

// Accepted returns how many requests were answered 200, over every write key, and how many
// body bytes they carried.
func (s *Server) Accepted() (requests, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted.requests, s.accepted.bytes
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// UniqueCount returns how many distinct messageIds arrived over every write key.
func (s *Server) UniqueCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// WaitUnique waits until n distinct messages arrived for writeKey, or timeout; it reports
// whether they did.
func (s *Server) WaitUnique(writeKey string, n int, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if len(s.Unique(writeKey)) >= n {
			return true
		}
	}
	return len(s.Unique(writeKey)) >= n
}
