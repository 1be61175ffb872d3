package server

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Hook bodies are read whole into memory, so the bytes being read at once are bounded: a burst of
// large posts waits briefly for room and is then told to come back (503 + Retry-After), which
// SparkPost and Segment both do, instead of exhausting memory.
const (
	// DefaultHookMemory is how many body bytes hooks may hold at once.
	DefaultHookMemory = 256 << 20
	// hookMemoryWait is how long a request waits for room before it is refused.
	hookMemoryWait = 2 * time.Second
)

// limitHookMemory reserves the request's body size (the hook limit when unknown) from the
// server's budget for as long as the handler runs.
func (s *Server) limitHookMemory(c *gin.Context) {
	n := c.Request.ContentLength
	if n < 0 || n > HookBodyLimit {
		n = HookBodyLimit
	}
	n = max(n, 4<<10) // headers and bookkeeping cost something even for empty bodies
	ctx, cancel := context.WithTimeout(c.Request.Context(), hookMemoryWait)
	defer cancel()
	if err := s.hookMemory.Acquire(ctx, n); err != nil {
		c.Header("Retry-After", "1")
		s.fail(c, domain.Errorf(domain.EUNAVAILABLE, "too many large requests are being read; retry shortly"))
		return
	}
	defer s.hookMemory.Release(n)
	c.Next()
}

// newHookMemory returns the budget semaphore.
func newHookMemory(bytes int64) *semaphore.Weighted {
	if bytes <= 0 {
		bytes = DefaultHookMemory
	}
	return semaphore.NewWeighted(max(bytes, HookBodyLimit))
}
