package domain

// Truncate cuts s to at most n bytes without splitting a UTF-8 sequence and marks the cut with
// "…", so that a hostile or huge value quoted in a reason, a log line or a stored error stays
// short and remains valid text.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
