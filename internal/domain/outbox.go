package domain

// The outbox's vocabulary, in one place: which receiver a delivery is for, where it stands and
// why it waits. The store keeps these words in its rows, the engine and the senders set them,
// and the API shows and filters by them.

// Targets: the receiver a delivery goes to.
const (
	TargetSegment  = "segment"  // the tenant's Segment workspace (direction A)
	TargetWorkflow = "workflow" // one of the tenant's workflow endpoints (direction B)
)

// Delivery statuses.
const (
	StatusPending   = "pending"   // waiting to be sent (see its reason)
	StatusSending   = "sending"   // claimed by a sender; handed back on shutdown or after a crash
	StatusDelivered = "delivered" // the receiver accepted it
	StatusDead      = "dead"      // retried until it expired; re-queueable
	StatusPaused    = "paused"    // its source is paused
	// StatusFailed is no stored status but a filter: pending deliveries whose last attempt
	// failed, waiting for their next one.
	StatusFailed = "failed"
	// StatusWaitingForUser is no stored status either: SPEC §6.4's name for a pending workflow
	// delivery held for its subscriber's identify, shown and filtered by as a status.
	StatusWaitingForUser = ReasonWaitingForUser
)

// Targets and Statuses list what a deliveries filter takes.
var (
	Targets  = []string{TargetSegment, TargetWorkflow}
	Statuses = []string{StatusPending, StatusSending, StatusDelivered, StatusDead, StatusPaused, StatusWaitingForUser, StatusFailed}
)

// Reasons a delivery waits, shown with it.
const (
	ReasonNoWriteKey     = "no_write_key"       // its tenant has registered no Segment write key yet
	ReasonKeyRejected    = "write_key_rejected" // Segment answered 401/403 to the tenant's write key
	ReasonRetryAfter     = "retry_after"        // the receiver asked to wait (429/5xx) before it was sent
	ReasonWaitingForUser = "waiting_for_user"   // a workflow delivery held until its recipient's profile exists
)
