package controller

import (
	"fmt"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// maxEventNote is the most bytes the events API accepts in an Event's note (NoteLengthLimit of its validation):
// it refuses a longer one, and the Event is lost with only a log line in the operator to show for it.
const maxEventNote = 1024

// truncatedMarker ends a note that was cut to fit; the condition on the object keeps the whole message.
const truncatedMarker = " …[truncated; the object's conditions hold the whole message]"

// truncateNote returns note cut to at most maxEventNote bytes, on a UTF-8 character boundary, ending with
// truncatedMarker when anything was cut.
func truncateNote(note string) string {
	if len(note) <= maxEventNote {
		return note
	}
	cut := maxEventNote - len(truncatedMarker)
	for cut > 0 && !utf8.RuneStart(note[cut]) {
		cut--
	}
	return note[:cut] + truncatedMarker
}

// noteFitter is an EventRecorder whose notes always fit the events API: a long error from a receiver, a long
// URL or hostname quoted in a condition message would otherwise make the API refuse the Event.
type noteFitter struct {
	events.EventRecorder
}

// FitNotes wraps r so every note it records is cut to maxEventNote bytes. Every recorder of the operator goes
// through it: the controllers' (Setup) and ingest's (ingest.NewRefusals).
func FitNotes(r events.EventRecorder) events.EventRecorder {
	if r == nil {
		return nil
	}
	if _, fitted := r.(noteFitter); fitted {
		return r
	}
	return noteFitter{r}
}

func (f noteFitter) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	f.EventRecorder.Eventf(regarding, related, eventtype, reason, action, "%s", truncateNote(fmt.Sprintf(note, args...)))
}
