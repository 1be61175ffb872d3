package domain

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
)

// Cursor is the one paging scheme of every list: the sort key of the last row a page returned
// (its time, when the list is ordered by time, and its id), handed to clients as an opaque
// string in links.next.
type Cursor struct {
	Time time.Time
	ID   string
}

// cursorWire is a Cursor as encoded: Unix milliseconds and the id.
type cursorWire struct {
	T  int64  `json:"t"`
	ID string `json:"id"`
}

// String encodes the cursor for a links.next URL.
func (c Cursor) String() string {
	var ms int64
	if !c.Time.IsZero() {
		ms = c.Time.UnixMilli()
	}
	b, _ := json.Marshal(cursorWire{T: ms, ID: c.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

// IntID returns the id of a cursor over a list keyed by row number.
func (c Cursor) IntID() (int64, error) {
	n, err := strconv.ParseInt(c.ID, 10, 64)
	if err != nil || n <= 0 {
		return 0, errNotACursor
	}
	return n, nil
}

var errNotACursor = Errorf(EINVALID, "cursor: not a cursor this server issued; use links.next as given")

// ParseCursor decodes a cursor a list handed out. Errors: EINVALID.
func ParseCursor(v string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	var w cursorWire
	if err != nil || json.Unmarshal(raw, &w) != nil || w.ID == "" {
		return Cursor{}, errNotACursor
	}
	c := Cursor{ID: w.ID}
	if w.T != 0 {
		c.Time = time.UnixMilli(w.T).UTC()
	}
	return c, nil
}

// ParseLimit reads a page size parameter (limit, per_page): empty gives def, anything but a
// whole number from 1 to max is an EINVALID error naming the parameter.
func ParseLimit(name, v string, def, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, Errorf(EINVALID, "%s: must be a whole number from 1 to %d", name, max)
	}
	return n, nil
}
