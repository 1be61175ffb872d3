package destination

import (
	"context"
	"time"
)

// pruneChunk bounds one pruning write so that it never holds the writer for long.
const pruneChunk = 5000

// PruneMessages deletes the stored Segment messages older than their tenant's retention (the
// event-store retention of SPEC §5.5, 90 days unless the tenant changed it) and returns how
// many. Profiles and events are not pruned: they are the subscribers' current state.
func PruneMessages(ctx context.Context, db interface {
	Now() time.Time
	PruneInbound(ctx context.Context, now time.Time, limit int) (int64, error)
}) (int64, error) {
	now := db.Now()
	var total int64
	for {
		n, err := db.PruneInbound(ctx, now, pruneChunk)
		total += n
		if err != nil || n < pruneChunk {
			return total, err
		}
	}
}
