package sparkpost

import (
	"fmt"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sourcetest"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// FuzzParseBatch feeds arbitrary bodies through the whole pure pipeline (sourcetest.CheckBody).
func FuzzParseBatch(f *testing.F) {
	sourcetest.Seed(f, `[]`, `{}`, `[{"msys":{}}]`, `[1,null,"x"]`, `[{"msys":{"a":{},"b":1}}]`,
		`[{"msys":{"track_event":{"type":"click","timestamp":"1e9","rcpt_to":" A@B ","geo_ip":{"latitude":"NaN"}}}}]`)
	settings := []domain.SourceSettings{
		{},
		{AnonymousID: domain.AnonymousEmail, ForwardInitialOpens: true, UserIDKeys: []string{"id"}},
		{AnonymousID: domain.AnonymousSkip, Events: []string{"open", "click"}},
	}
	f.Fuzz(func(t *testing.T, body []byte) { sourcetest.CheckBody(t, Provider, body, settings, "sp-") })
}

// BenchmarkParseAndMap measures the processor's pure cost per event on a 1,000-event batch of
// realistic size (~1 kB an event, mixed types): source.Batch splits the stored body, parses and
// maps each event and encodes its Segment payload, as the processor does before committing.
func BenchmarkParseAndMap(b *testing.B) {
	body := benchBatch(1000)
	batch := &store.InboxBatch{ID: 1, TenantID: "ten_bench", SourceID: "src_bench", Body: body}
	s := domain.SourceSettings{}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pb := source.Batch(Provider, batch, s, "")
		if len(pb.Events) != 1000 {
			b.Fatalf("%d events", len(pb.Events))
		}
		for _, e := range pb.Events {
			if e.Status == store.EventInvalid {
				b.Fatal(e.Reason)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/event")
}

// benchBatch builds a SparkPost batch of n realistic events of mixed types.
func benchBatch(n int) []byte {
	types := []string{"delivery", "injection", "open", "click", "bounce", "initial_open"}
	var sb strings.Builder
	sb.WriteString("[")
	for i := range n {
		if i > 0 {
			sb.WriteString(",")
		}
		typ := types[i%len(types)]
		wrapper := "message_event"
		if typ == "open" || typ == "click" || typ == "initial_open" {
			wrapper = "track_event"
		}
		fmt.Fprintf(&sb, `{"msys":{%q:{"type":%q,"event_id":"%d","timestamp":"%d","rcpt_to":"user%d@example.com",`+
			`"rcpt_meta":{"user_id":"u-%d","plan":"pro"},"rcpt_tags":["a","b"],"message_id":"0006f2812d59b5a6a1dc","campaign_id":"spring-sale",`+
			`"template_id":"template_120632847835523516","template_version":"0","transmission_id":"120632847835523516","subaccount_id":101,`+
			`"customer_id":"1521","ip_pool":"shared","friendly_from":"news@example.com","msg_from":"msprvs1=17323JExI9Mwb=bounces-1521@spmailt.com",`+
			`"msg_size":"2911","num_retries":"0","queue_time":"366","routing_domain":"example.com","sending_ip":"52.39.182.248",`+
			`"subject":"Spring deals are here, %d","ip_address":"66.102.6.159","user_agent":"Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0",`+
			`"target_link_url":"https://example.com/deals?utm_source=sp","target_link_name":"CTA","bounce_class":"10",`+
			`"geo_ip":{"country":"US","region":"CA","city":"Mountain View","latitude":37.4192,"longitude":-122.0574}}}}`,
			wrapper, typ, 120632847947746861+i, 1496154610+i, i, i, i)
	}
	sb.WriteString("]")
	return []byte(sb.String())
}
