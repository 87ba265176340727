package controller

import (
	"testing"
	"time"
)

// TestHostBusyDelaySpreadsRechecks holds what docs/operations.md says: a delivery whose host is busy is looked at
// again after a random 250 to 750 ms, and the delays differ, so the deliveries waiting on one host do not come
// back together.
func TestHostBusyDelaySpreadsRechecks(t *testing.T) {
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		d := hostBusyDelay()
		if d < 250*time.Millisecond || d >= 750*time.Millisecond {
			t.Fatalf("hostBusyDelay() = %v, want within [250ms, 750ms)", d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < 400*time.Millisecond {
		t.Errorf("2000 delays spread over only %v..%v, want about 250ms..750ms", lo, hi)
	}
}
