package store

import (
	"database/sql"
	"os"
	"sync"
	"time"
)

// checkpointer copies the WAL back into the database file in the background, on a connection of
// its own. SQLite's automatic checkpoint would run inside a writer's COMMIT — holding up every
// webhook waiting for that commit — so it is switched off on the writer (wal_autocheckpoint(0))
// and done here instead. PASSIVE checkpoints never block the writer or readers, but under
// steady load the WAL is never started over (a benchmark run left 3.4 GB of it), so the
// committer itself truncates it between two transactions once it passes walLimit (see
// committer.truncateWAL).
type checkpointer struct {
	db    *sql.DB
	every time.Duration
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// walLimit is the WAL size past which the committer truncates the WAL.
const walLimit = 64 << 20

func newCheckpointer(db *sql.DB, every time.Duration) *checkpointer {
	c := &checkpointer{db: db, every: every, quit: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c
}

func (c *checkpointer) loop() {
	defer close(c.done)
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
			// Errors (SQLITE_BUSY while a reader holds old frames) only mean "try next tick".
			c.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

// close stops the loop and, with nothing else running, checkpoints everything and truncates the WAL.
func (c *checkpointer) close() {
	c.once.Do(func() { close(c.quit) })
	<-c.done
	c.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	c.db.Close()
}

// truncateWAL checkpoints and truncates the WAL on the writer connection when it has grown past
// walLimit. It runs on the committer's goroutine between transactions, so no writer competes;
// readers are waited for (busy_timeout). Checked at most every walCheckEvery.
func (c *committer) truncateWAL() {
	if c.wal == "" || time.Since(c.walChecked) < walCheckEvery {
		return
	}
	c.walChecked = time.Now()
	if fi, err := os.Stat(c.wal); err != nil || fi.Size() <= walLimit {
		return
	}
	c.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
}

// walCheckEvery is how often the committer looks at the WAL's size.
const walCheckEvery = 250 * time.Millisecond
