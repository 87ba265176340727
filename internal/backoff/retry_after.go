package backoff

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxDeltaSeconds is the largest delta-seconds value that still fits in a
// time.Duration; larger values are clamped rather than overflowing into the past.
const maxDeltaSeconds = math.MaxInt64 / int64(time.Second)

// ParseRetryAfter parses a Retry-After header value (RFC 9110 section 10.2.3:
// delta-seconds or an HTTP-date) relative to now. It returns zero when the value
// is absent, invalid or already in the past, because then there is nothing to
// wait for beyond the normal schedule.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, maxDeltaSeconds)) * time.Second
	} else if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && !strings.HasPrefix(v, "-") {
		// An absurdly large delta is still a request to wait a long time; the
		// caller's cap (maxRetryAfter) decides how long that really is.
		return time.Duration(maxDeltaSeconds) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if d := t.Sub(now); d > 0 {
		return d
	}
	return 0
}
