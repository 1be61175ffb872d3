package server

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Failed-authentication throttling: a client address that keeps presenting wrong credentials
// (Basic passwords, API keys, OAuth client secrets, JWTs) is answered 429 with Retry-After
// instead of another guess. Failures are counted per client address and per credential id at
// that address, never per credential id alone: a stranger guessing a source's password must not
// lock SparkPost itself out. Successful requests cost nothing.
const (
	authFailBurst = 20              // failures allowed in a row
	authFailEvery = 2 * time.Second // then one more per this long
	authFailKeys  = 100_000         // addresses and pairs tracked at most
)

type authLimiter struct {
	mu   sync.Mutex
	keys map[string]*rate.Limiter
}

func newAuthLimiter() *authLimiter { return &authLimiter{keys: map[string]*rate.Limiter{}} }

// keysOf is the client address and, when given, the credential id at that address.
func keysOf(c *gin.Context, credential string) []string {
	ip := c.ClientIP()
	if credential == "" {
		return []string{ip}
	}
	return []string{ip, ip + "|" + credential}
}

// wait is how long the caller must wait before its next try, 0 when it may try now.
func (l *authLimiter) wait(keys []string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var d time.Duration
	for _, k := range keys {
		if lim, ok := l.keys[k]; ok && lim.Tokens() < 1 {
			d = max(d, time.Duration((1-lim.Tokens())*float64(authFailEvery)))
		}
	}
	return d
}

// fail counts a failed authentication against keys.
func (l *authLimiter) fail(keys []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) >= authFailKeys {
		for k, lim := range l.keys { // forget those that have recovered fully
			if lim.Tokens() >= authFailBurst {
				delete(l.keys, k)
			}
		}
		if len(l.keys) >= authFailKeys {
			clear(l.keys) // under a flood of addresses: start over rather than grow
		}
	}
	for _, k := range keys {
		lim, ok := l.keys[k]
		if !ok {
			lim = rate.NewLimiter(rate.Every(authFailEvery), authFailBurst)
			l.keys[k] = lim
		}
		lim.Allow()
	}
}

// throttled answers 429 with Retry-After when the caller has failed too often; it reports
// whether it did.
func (s *Server) throttled(c *gin.Context, credential string) bool {
	d := s.authFails.wait(keysOf(c, credential))
	if d <= 0 {
		return false
	}
	c.Header("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
	s.fail(c, domain.Errorf(domain.ETOOMANY, "too many failed authentication attempts from this address; try again in %s", d.Round(time.Second)))
	return true
}

// authFailed counts a failed authentication and answers err.
func (s *Server) authFailed(c *gin.Context, credential string, err error) {
	s.authFails.fail(keysOf(c, credential))
	s.fail(c, err)
}
