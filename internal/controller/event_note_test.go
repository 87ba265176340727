package controller

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateNote(t *testing.T) {
	keep := maxEventNote - len(truncatedMarker)
	tests := []struct {
		name, note string
		want       string // "" means the note itself
	}{
		{name: "short", note: "all 6 attempts failed; last: HTTP 502"},
		{name: "exactly the limit", note: strings.Repeat("a", maxEventNote)},
		{name: "one byte over", note: strings.Repeat("a", maxEventNote+1), want: strings.Repeat("a", keep) + truncatedMarker},
		{name: "long URL", note: "DNS: no such host " + strings.Repeat("x", 3000), want: "DNS: no such host " + strings.Repeat("x", keep-18) + truncatedMarker},
		// "é" is 2 bytes and "€" 3: a cut inside either drops the whole character.
		{name: "cut inside a 2-byte character", note: strings.Repeat("a", keep-1) + strings.Repeat("é", 600), want: strings.Repeat("a", keep-1) + truncatedMarker},
		{name: "cut inside a 3-byte character", note: strings.Repeat("a", keep-2) + strings.Repeat("€", 600), want: strings.Repeat("a", keep-2) + truncatedMarker},
		{name: "cut on a character boundary", note: strings.Repeat("a", keep-3) + strings.Repeat("€", 600), want: strings.Repeat("a", keep-3) + "€" + truncatedMarker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.note
			}
			got := truncateNote(tt.note)
			if got != want {
				t.Fatalf("truncateNote = %q (%d bytes), want %q (%d bytes)", got, len(got), want, len(want))
			}
			if len(got) > maxEventNote || !utf8.ValidString(got) {
				t.Fatalf("note of %d bytes, valid UTF-8 %v: the events API would refuse it", len(got), utf8.ValidString(got))
			}
		})
	}
}
