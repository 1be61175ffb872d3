//go:build race

package store_test

// raceEnabled is true when the tests run under the race detector, which makes SQLite (C
// translated to Go) about twenty times slower: load tests shrink their work to fit.
const raceEnabled = true
