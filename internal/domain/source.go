package domain

// Providers of sources: the senders whose webhooks Switchboard takes (SPEC §10).
const (
	ProviderSparkPost = "sparkpost"
	ProviderSendGrid  = "sendgrid"
)

// Authentication kinds of a source's webhook.
const (
	AuthBasic     = "basic"     // HTTP Basic with the username and password made at creation
	AuthOAuth2    = "oauth2"    // a bearer token from /oauth/token (client credentials)
	AuthSignature = "signature" // SendGrid's Signed Event Webhook alone (ECDSA, public_key)
)

// Anonymous-id policies of a source (SPEC §5.4 `anonymous_id`).
const (
	AnonymousSHA256Email = "sha256_email" // hex SHA-256 of the lower-cased trimmed recipient (the default)
	AnonymousEmail       = "email"        // the trimmed recipient itself
	AnonymousSkip        = "skip"         // do not send events without a user id
)

// SourceSettings are a source's mapping options (SPEC §5.4), stored with the source and read
// by its provider's mapping. One type serves the store, the rules and the mapping.
type SourceSettings struct {
	// UserIDKeys are the metadata keys (SparkPost rcpt_meta, SendGrid unique args) tried for
	// the userId, in order; empty means ["user_id", "userId"].
	UserIDKeys []string `json:"user_id_keys"`
	// AnonymousID is one of the Anonymous* policies; empty means AnonymousSHA256Email.
	AnonymousID string `json:"anonymous_id"`
	// Events is an optional allow-list of provider event types to send; empty sends every type
	// the provider maps. It never adds a type the mapping does not send.
	Events []string `json:"events"`
	// ForwardInitialOpens sends SparkPost's initial_open/amp_initial_open as "Email Opened"
	// (they double-count with open).
	ForwardInitialOpens bool `json:"forward_initial_opens"`
	// PublicKey is a SendGrid Signed Event Webhook verification key (base64 DER, as SendGrid
	// shows it); when set, every request must carry a valid signature. Not a secret.
	PublicKey string `json:"public_key,omitempty"`
}
