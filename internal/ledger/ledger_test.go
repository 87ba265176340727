package ledger_test

import (
	"testing"

	"github.com/hookpost/hookpost/internal/ledger"
)

func TestDiscardIsARecorderThatKeepsNothing(t *testing.T) {
	var r ledger.Recorder = ledger.Discard
	if r == nil {
		t.Fatal("Discard is nil: callers without a ledger would panic")
	}
	r.Record(ledger.Attempt{Number: 1, Outcome: ledger.OutcomeSucceeded})
}
