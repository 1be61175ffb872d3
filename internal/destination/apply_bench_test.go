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
