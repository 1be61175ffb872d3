package store

import (
	"database/sql"
	"sync"
	"time"
)

// checkpointer copies the WAL back into the database file in the background, on a connection of
// its own. SQLite's automatic checkpoint would run inside a writer's COMMIT — holding up every
// webhook waiting for that commit — so it is switched off on the writer (wal_autocheckpoint(0))
// and done here instead. PASSIVE checkpoints never block the writer or readers; once a
// checkpoint has caught up, the next write starts the WAL over, so its size stays bounded by
// what is written between two checkpoints.
type checkpointer struct {
	db    *sql.DB
	every time.Duration
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

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
