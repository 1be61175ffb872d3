package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDataDir takes an exclusive lock on the data directory for serve, so that a second serve
// on the same data says so at once instead of failing later with SQLite's "database is locked".
// The lock is released when the process ends, however it ends. Offline verbs (token, export)
// do not take it: they may run beside a server.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, "serve.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := ""
			if pid := strings.TrimSpace(string(b)); pid != "" {
				holder = " (pid " + pid + ")"
			}
			return nil, fmt.Errorf("data directory %s is in use by another switchboard serve%s; stop it, or give this one another SWITCHBOARD_DATA_DIR", dir, holder)
		}
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

// checkDatabasePresent refuses to start on a missing database when the data directory holds key
// files of an earlier installation: the database was lost (deleted, a volume not mounted), and
// quietly making an empty one would print a new operator token and drop every tenant's data.
func checkDatabasePresent(cfg *Config, startFresh bool) error {
	db := cfg.databasePath()
	if strings.Contains(db, "://") || startFresh {
		return nil
	}
	db = strings.TrimPrefix(db, "file:")
	if i := strings.IndexByte(db, '?'); i >= 0 {
		db = db[:i]
	}
	if _, err := os.Stat(db); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for _, k := range []string{"jwt.key", "encryption.key"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, k)); err == nil {
			return fmt.Errorf("the database %s is missing, but %s holds the keys of an earlier installation (%s): restore the database from a backup, "+
				"or run serve with --start-fresh to begin with an empty one (every tenant, source and event of the old one is gone)", db, cfg.DataDir, k)
		}
	}
	return nil
}
