package takproto

import (
	"time"

	"cotd/cot"
)

// Helpers of FromXML, ParseRequest and AppendXML. All three read XML with cot.Lexer in its
// Strict modes: unlike cot's header scanner they must trust structure (close tags matching,
// attribute syntax, bounded nesting), because a v1 client's xmlDetail ends up inside the XML
// sent to other clients and must not be able to close elements it did not open.

// validValue reports whether a raw attribute value is free of control characters other than
// tab, LF and CR, which XML cannot carry and AppendXML would not write back as they were.
func validValue(v []byte) bool {
	for _, c := range v {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// parseMillis reads a CoT time as milliseconds since the Unix epoch, truncating below the
// millisecond. Times before the epoch do not fit the protocol's uint64.
func parseMillis(b []byte) (uint64, bool) {
	t, ok := cot.ParseTime(b)
	if !ok || t.Unix() < 0 {
		return 0, false
	}
	return uint64(t.UnixMilli()), true
}

// maxMillis is the last millisecond a CoT time can express with a four-digit year,
// 9999-12-31T23:59:59.999Z.
const maxMillis = 253402300799999

// appendMillis appends ms (at most maxMillis) formatted as cot.FormatTime does.
func appendMillis(b []byte, ms uint64) []byte {
	return time.UnixMilli(int64(ms)).UTC().AppendFormat(b, cot.TimeLayout)
}
