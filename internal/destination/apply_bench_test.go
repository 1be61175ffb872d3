package destination

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

// BenchmarkReceiveBatch stores and applies 1,000-message hook bodies of identify calls for new
// users (each with an email, so profiles, channels and the dedupe index are all written): the
// writer's cost per message without HTTP around it.
func BenchmarkReceiveBatch(b *testing.B) {
	svc, did := serviceFixture(b, DefaultSettings())
	ctx := context.Background()
	n := 0
	for b.Loop() {
		msgs := make([]json.RawMessage, 1000)
		for i := range msgs {
			n++
			msgs[i] = json.RawMessage(fmt.Sprintf(`{"type":"identify","userId":"u%d","messageId":"m%d","traits":{"email":"u%d@example.com","plan":"pro"}}`, n, n, n))
		}
		if _, err := svc.Receive(ctx, did, Prepare(msgs)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkReceiveMix stores and applies 100-message hook bodies shaped like make bench's
// Segment load: every fourth message an identify of one of 5,000 users (so most update a
// profile that exists), the others tracks of those users.
func BenchmarkReceiveMix(b *testing.B) {
	svc, did := serviceFixture(b, DefaultSettings())
	ctx := context.Background()
	n := 0
	for b.Loop() {
		msgs := make([]json.RawMessage, 100)
		for i := range msgs {
			n++
			if n%4 == 0 {
				msgs[i] = fmt.Appendf(nil, `{"type":"identify","messageId":"m-%d","userId":"u%d","traits":{"email":"u%d@example.com","name":"User %d"},"timestamp":"2024-05-01T10:00:00Z"}`, n, n%5000, n%5000, n)
			} else {
				msgs[i] = fmt.Appendf(nil, `{"type":"track","messageId":"m-%d","userId":"u%d","event":"Order Completed","properties":{"total":42.5,"n":%d},"timestamp":"2024-05-01T10:00:00Z"}`, n, n%5000, n)
			}
		}
		if _, err := svc.Receive(ctx, did, Prepare(msgs)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}
