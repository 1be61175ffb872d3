package source

import "testing"

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{OutcomeSend: "send", OutcomeNotSent: "not_sent", OutcomeSkipped: "skipped", OutcomeInvalid: "invalid", 0: "Outcome(0)"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(o), o.String(), want)
		}
	}
}
