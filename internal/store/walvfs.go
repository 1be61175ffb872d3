package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The writer's WAL appends, gathered. SQLite writes a WAL frame as two pwrite(2) calls, its
// 24-byte header and then its page, so a 1,000-event commit that dirties some 8,000 pages makes
// 16,000 system calls before its one sync; the profiles had a third of the writer's time in them.
// walVFS is SQLite's default VFS with one change: a file opened as a WAL gathers writes that
// continue the previous one in a buffer, and writes the buffer with one pwrite when anything
// else happens to the file — a sync, a read, a size query or change, a file control, a write
// that does not continue the buffer, a full buffer, or the close. Every other file, and every
// other method, is the default VFS's own.
//
// A commit stays as durable and as visible: with synchronous(FULL) SQLite syncs the WAL after
// its commit frame and only then publishes the new frames in the WAL index, so the buffer is on
// the file before any reader (of this process or another) can look for them, and on stable
// storage before the commit returns. A write that fails when the buffer is written is reported
// by the call that wrote it (the sync of the commit, which then fails). The writer is the only
// connection that uses this VFS, and it must keep synchronous(FULL): with NORMAL a commit
// publishes frames without a sync, before they would have reached the file.
const walVFSName = "switchboard-wal"

// walBufferSize is how much a WAL buffers before it writes: 31 frames of 4 KiB pages. It is the
// most one write of the default VFS takes (its seekAndWriteFd masks the length with 0x1ffff).
const walBufferSize = 0x1ffff

var (
	walVFSOnce sync.Once
	walVFSErr  error

	// walVFS is the registered sqlite3_vfs; SQLite keeps a pointer to it (a Go global does not
	// move). baseVFS is the default VFS it wraps.
	walVFS  sqlite3.Tsqlite3_vfs
	baseVFS *sqlite3.Tsqlite3_vfs

	// walMethods are the methods of a WAL file: the default VFS's, with the ones that touch the
	// file's bytes replaced. walInner are the default methods it replaced (set on the first WAL
	// opened; a file whose default methods differ is left unwrapped).
	walMethodsOnce sync.Once
	walMethods     sqlite3.Tsqlite3_io_methods
	walInner       uintptr

	walFiles = struct {
		sync.Mutex
		m map[uintptr]*walFile
	}{m: map[uintptr]*walFile{}}

	// walStats counts, for tests, the writes SQLite made to WAL files and the writes they became.
	walStats struct{ appends, writes atomic.Int64 }
)

// walFile is the buffer of one open WAL file. SQLite calls a file's methods from one connection
// at a time; the mutex orders them for the race detector across the goroutines database/sql
// runs that connection on.
type walFile struct {
	mu  sync.Mutex
	buf uintptr // walBufferSize bytes of C memory, allocated on the first buffered write
	n   int     // bytes buffered
	off int64   // file offset of the buffer's first byte
}

// registerWALVFS registers walVFS once per process.
func registerWALVFS() error {
	walVFSOnce.Do(func() {
		tls := libc.NewTLS()
		defer tls.Close()
		base := sqlite3.Xsqlite3_vfs_find(tls, 0)
		if base == 0 {
			walVFSErr = fmt.Errorf("store: SQLite has no default VFS")
			return
		}
		baseVFS = (*sqlite3.Tsqlite3_vfs)(cptr(base))
		name, err := libc.CString(walVFSName)
		if err != nil {
			walVFSErr = err
			return
		}
		walVFS = *baseVFS
		walVFS.FpNext = 0
		walVFS.FzName = name
		walVFS.FxOpen = cFunc(walOpen)
		if rc := sqlite3.Xsqlite3_vfs_register(tls, uintptr(unsafe.Pointer(&walVFS)), 0); rc != sqlite3.SQLITE_OK {
			walVFSErr = fmt.Errorf("store: register the WAL VFS: SQLite error %d", rc)
		}
	})
	return walVFSErr
}

// walOpen is walVFS's xOpen: the default VFS opens the file; a WAL gets walMethods.
func walOpen(tls *libc.TLS, _ uintptr, zName uintptr, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	rc := (*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{baseVFS.FxOpen})))(
		tls, uintptr(unsafe.Pointer(baseVFS)), zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK || flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	file := (*sqlite3.Tsqlite3_file)(cptr(pFile))
	if file.FpMethods == 0 {
		return rc
	}
	walMethodsOnce.Do(func() {
		walInner = file.FpMethods
		walMethods = *(*sqlite3.Tsqlite3_io_methods)(cptr(walInner))
		walMethods.FxClose = cFunc(walClose)
		walMethods.FxRead = cFunc(walRead)
		walMethods.FxWrite = cFunc(walWrite)
		walMethods.FxTruncate = cFunc(walTruncate)
		walMethods.FxSync = cFunc(walSync)
		walMethods.FxFileSize = cFunc(walFileSize)
		walMethods.FxFileControl = cFunc(walFileControl)
		if walMethods.FiVersion >= 3 {
			walMethods.FxFetch = cFunc(walFetch)
		}
	})
	if file.FpMethods != walInner {
		return rc
	}
	walFiles.Lock()
	walFiles.m[pFile] = &walFile{}
	walFiles.Unlock()
	file.FpMethods = uintptr(unsafe.Pointer(&walMethods))
	return rc
}

func inner() *sqlite3.Tsqlite3_io_methods { return (*sqlite3.Tsqlite3_io_methods)(cptr(walInner)) }

// lookupWAL returns the buffer of an open WAL file, locked.
func lookupWAL(p uintptr) *walFile {
	walFiles.Lock()
	f := walFiles.m[p]
	walFiles.Unlock()
	f.mu.Lock()
	return f
}

// flush writes the buffer. The buffer is empty afterwards even when the write failed: SQLite
// treats the failure as its write's and rolls the transaction back.
func (f *walFile) flush(tls *libc.TLS, p uintptr) int32 {
	if f.n == 0 {
		return sqlite3.SQLITE_OK
	}
	walStats.writes.Add(1)
	rc := innerWrite(tls, p, f.buf, int32(f.n), f.off)
	f.n = 0
	return rc
}

func innerWrite(tls *libc.TLS, p, src uintptr, n int32, off int64) int32 {
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&struct{ uintptr }{inner().FxWrite})))(tls, p, src, n, off)
}

func walWrite(tls *libc.TLS, p, src uintptr, n int32, off int64) int32 {
	f := lookupWAL(p)
	defer f.mu.Unlock()
	walStats.appends.Add(1)
	if f.n > 0 && (off != f.off+int64(f.n) || f.n+int(n) > walBufferSize) {
		if rc := f.flush(tls, p); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if int(n) > walBufferSize {
		walStats.writes.Add(1)
		return innerWrite(tls, p, src, n, off)
	}
	if f.buf == 0 {
		if f.buf = libc.Xmalloc(tls, walBufferSize); f.buf == 0 {
			return sqlite3.SQLITE_NOMEM
		}
	}
	if f.n == 0 {
		f.off = off
	}
	copy(unsafe.Slice((*byte)(cptr(f.buf+uintptr(f.n))), n), unsafe.Slice((*byte)(cptr(src)), n))
	f.n += int(n)
	return sqlite3.SQLITE_OK
}

func walClose(tls *libc.TLS, p uintptr) int32 {
	f := lookupWAL(p)
	rc := f.flush(tls, p)
	if f.buf != 0 {
		libc.Xfree(tls, f.buf)
		f.buf = 0
	}
	f.mu.Unlock()
	walFiles.Lock()
	delete(walFiles.m, p)
	walFiles.Unlock()
	(*sqlite3.Tsqlite3_file)(cptr(p)).FpMethods = walInner
	if crc := (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{inner().FxClose})))(tls, p); rc == sqlite3.SQLITE_OK {
		rc = crc
	}
	return rc
}

// The methods below write the buffer first and then do what the default method does.

func walRead(tls *libc.TLS, p, dst uintptr, n int32, off int64) int32 {
	return flushThen(tls, p, func() int32 {
		return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&struct{ uintptr }{inner().FxRead})))(tls, p, dst, n, off)
	})
}

func walTruncate(tls *libc.TLS, p uintptr, size int64) int32 {
	return flushThen(tls, p, func() int32 {
		return (*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&struct{ uintptr }{inner().FxTruncate})))(tls, p, size)
	})
}

func walSync(tls *libc.TLS, p uintptr, flags int32) int32 {
	return flushThen(tls, p, func() int32 {
		return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&struct{ uintptr }{inner().FxSync})))(tls, p, flags)
	})
}

func walFileSize(tls *libc.TLS, p, pSize uintptr) int32 {
	return flushThen(tls, p, func() int32 {
		return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{inner().FxFileSize})))(tls, p, pSize)
	})
}

func walFileControl(tls *libc.TLS, p uintptr, op int32, pArg uintptr) int32 {
	return flushThen(tls, p, func() int32 {
		return (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{inner().FxFileControl})))(tls, p, op, pArg)
	})
}

func walFetch(tls *libc.TLS, p uintptr, off int64, n int32, pp uintptr) int32 {
	return flushThen(tls, p, func() int32 {
		return (*(*func(*libc.TLS, uintptr, int64, int32, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{inner().FxFetch})))(tls, p, off, n, pp)
	})
}

// flushThen writes the buffer of WAL file p and, when that succeeded, calls method.
func flushThen(tls *libc.TLS, p uintptr, method func() int32) int32 {
	f := lookupWAL(p)
	defer f.mu.Unlock()
	if rc := f.flush(tls, p); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return method()
}

// cFunc is a Go function as a C function pointer, the way the transpiled SQLite calls them: the
// address of the function value (https://golang.org/s/go11func). Only for top-level functions.
func cFunc[T any](f T) uintptr { return *(*uintptr)(unsafe.Pointer(&struct{ f T }{f})) }

// cptr is a C address as a pointer (C memory, or a Go global SQLite was handed).
func cptr(u uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&u)) }
