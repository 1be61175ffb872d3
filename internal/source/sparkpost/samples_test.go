package sparkpost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/source"
	"github.com/switchboard-hub/switchboard/internal/source/sourcetest"
)

// samplesDir holds public SparkPost payloads shared by the team; it is not part of the repo,
// so tests that read it skip when it is absent.
const samplesDir = "../../../../shared/sparkpost-samples"

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samplesDir, name))
	if os.IsNotExist(err) {
		t.Skipf("%s absent", samplesDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSampleBatches(t *testing.T) {
	tests := []struct {
		file    string
		n       int
		ping    bool
		wantSMS int // sms_status events, which carry no event_id
	}{
		{"webhook-batch-live-2017-java-sparkpost.json", 11, false, 0},
		{"webhook-batch-all-classes-2016-gosparkpost.json", 19, false, 1},
		{"webhook-batch-all-types-SYNTHESIZED.json", 25, false, 1},
		{"webhook-validation-batch.json", 0, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := readSample(t, tt.file)
			elems, ping, err := SplitBatch(body)
			if err != nil || ping != tt.ping || len(elems) != tt.n {
				t.Fatalf("SplitBatch = %d elements, ping %v, err %v; want %d, %v", len(elems), ping, err, tt.n, tt.ping)
			}
			sms := 0
			for i, e := range elems {
				ev := ParseEvent(e)
				if ev.ParseError != "" {
					t.Errorf("element %d: ParseError %q", i, ev.ParseError)
				}
				if ev.Type == "" || ev.Wrapper == "" || ev.Timestamp.IsZero() {
					t.Errorf("element %d: type %q wrapper %q timestamp %v", i, ev.Type, ev.Wrapper, ev.Timestamp)
				}
				if ev.Timestamp.Year() < 2016 || ev.Timestamp.Year() > 2020 {
					t.Errorf("element %d: timestamp %v is not from the samples' years", i, ev.Timestamp)
				}
				if ev.Type == "sms_status" {
					sms++
					if !strings.HasPrefix(ev.EventID, "h-") || len(ev.EventID) != 2+64 {
						t.Errorf("sms_status EventID = %q, want h- and a sha256", ev.EventID)
					}
					if again := ParseEvent(e); again.EventID != ev.EventID {
						t.Errorf("hash id not stable: %s then %s", ev.EventID, again.EventID)
					}
				} else if ev.EventID == "" || strings.HasPrefix(ev.EventID, "h-") {
					t.Errorf("element %d (%s): EventID %q, want SparkPost's", i, ev.Type, ev.EventID)
				}
				tr, out, reason := Map("ten_1", ev, domain.SourceSettings{})
				_, mappable := SegmentEventName(ev.Type, false)
				if mappable != (out == source.OutcomeSend) {
					t.Errorf("element %d (%s): outcome %v (%s)", i, ev.Type, out, reason)
				}
				if out == source.OutcomeSend && (tr.Event == "" || tr.UserID == "" && tr.AnonymousID == "" || len(tr.Properties) == 0) {
					t.Errorf("element %d (%s): incomplete track %+v", i, ev.Type, tr)
				}
			}
			if sms != tt.wantSMS {
				t.Errorf("%d sms_status events, want %d", sms, tt.wantSMS)
			}
		})
	}
}

// TestSampleOpenContext checks a real captured open: its reader's ip, agent and place reach
// Segment's context, and SparkPost's fields stay in properties.
func TestSampleOpenContext(t *testing.T) {
	elems, _, err := SplitBatch(readSample(t, "webhook-batch-live-2017-java-sparkpost.json"))
	if err != nil {
		t.Fatal(err)
	}
	ev := ParseEvent(elems[1])
	tr, out, reason := Map("ten_1", ev, domain.SourceSettings{})
	if ev.Type != "open" || out != source.OutcomeSend {
		t.Fatalf("%s: %v %s", ev.Type, out, reason)
	}
	sourcetest.AsSent(t, &tr)
	loc, _ := tr.Context["location"].(map[string]any)
	if tr.Context["ip"] != "66.102.6.159" || loc["city"] != "Mountain View" || loc["latitude"] != 37.4192 {
		t.Errorf("context %v", tr.Context)
	}
	if !strings.Contains(tr.Context["userAgent"].(string), "GoogleImageProxy") {
		t.Errorf("userAgent %v", tr.Context["userAgent"])
	}
	if tr.Properties["sending_ip"] != "52.39.26.144" || tr.Properties["msg_size"] != "2903" {
		t.Errorf("properties lost fields: %v", tr.Properties)
	}
}
