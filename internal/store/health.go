package store

import (
	"errors"
	"os"
	"sync"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// errWritesFailing is what a caller is told when the database cannot take writes: the disk is
// full, the file is unreadable, or it was deleted under the running server. It maps to 503 with
// Retry-After: the sender keeps its data and comes back, and nothing is acknowledged that was
// not committed to the database the server will find on its next start.
var errWritesFailing = domain.Errorf(domain.EUNAVAILABLE, "the database cannot take writes right now; try again later")

// health is what the committer knows of the database file: its identity at open, and the last
// write failure that was the database's fault rather than a caller's (cleared by a good commit).
type health struct {
	path  string
	ident os.FileInfo // nil for a database without a file to watch

	mu      sync.Mutex
	failing error
}

func newHealth(path string) *health {
	h := &health{path: path}
	if fi, err := os.Stat(path); err == nil {
		h.ident = fi
	}
	return h
}

// gone reports whether the database file was deleted or replaced since it was opened: SQLite
// keeps writing to the unlinked file, and all of it would vanish at the next start.
func (h *health) gone() bool {
	if h.ident == nil {
		return false
	}
	fi, err := os.Stat(h.path)
	return err != nil || !os.SameFile(fi, h.ident)
}

// note records the outcome of a transaction.
func (h *health) note(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing = err
}

// err is the database's current write failure, or nil.
func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failing
}

// storageFault reports whether err is the database's fault (disk full, I/O error, file gone or
// read-only) rather than the statement's.
func storageFault(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return true
	}
	return false
}
