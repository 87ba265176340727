package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hookpost/hookpost/internal/source"
)

// rereadPage is how many done rows one statement of Reread reads.
const rereadPage = 500

var _ source.Rereader = (*Source)(nil)

// Reread calls fn with each done row Hookpost processed at or after since and before until, in the order it
// processed them (then by id), a page at a time, until fn returns false. Done rows stay in the table for the
// retention (Options.Retention, --postgres-retention), which bounds how far back a replay reaches; the done index
// on processed_at serves the read. A row decodeRow would refuse (edited by hand since) is skipped: it is not an
// event Hookpost can deliver.
func (s *Source) Reread(ctx context.Context, since, until time.Time, fn func(source.Event) bool) error {
	afterAt, afterID := since, int64(-1)
	for {
		n, more, err := s.rereadPage(ctx, afterAt, afterID, until, func(at time.Time, id int64, ev source.Event) bool {
			afterAt, afterID = at, id
			return fn(ev)
		})
		if err != nil || !more || n < rereadPage {
			return err
		}
	}
}

// rereadPage reads the page after (afterAt, afterID) and hands each row to fn; more is false once fn said stop.
func (s *Source) rereadPage(ctx context.Context, afterAt time.Time, afterID int64, until time.Time, fn func(time.Time, int64, source.Event) bool) (n int, more bool, err error) {
	rows, err := s.pool.Query(ctx, s.sql.reread, afterAt, afterID, until, rereadPage, s.opts.MaxPayloadBytes)
	if err != nil {
		return 0, false, fmt.Errorf("re-read done rows of %s: %w", s.table.Qualified(), err)
	}
	defer rows.Close()
	for rows.Next() {
		var processedAt time.Time
		r, err := scanRow(rows, &processedAt)
		if err != nil {
			return n, false, fmt.Errorf("read done row: %w", err)
		}
		n++
		ev, reason := decodeRow(r, s.opts.MaxPayloadBytes)
		if reason != "" {
			continue
		}
		if !fn(processedAt, r.id, ev) {
			return n, false, nil
		}
	}
	if err := rows.Err(); err != nil {
		return n, false, fmt.Errorf("re-read done rows of %s: %w", s.table.Qualified(), err)
	}
	return n, true, nil
}
