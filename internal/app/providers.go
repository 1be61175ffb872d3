package app

// The providers whose webhooks Switchboard takes: each registers itself with package source
// when imported. A third provider is a sibling folder of these plus one line here.
import (
	_ "github.com/switchboard-hub/switchboard/internal/source/sendgrid"
	_ "github.com/switchboard-hub/switchboard/internal/source/sparkpost"
)
