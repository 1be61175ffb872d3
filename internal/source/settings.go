package source

import (
	"slices"
	"strings"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// SettingsChecker is a Provider with rules of its own for a source's settings (SendGrid's
// public key), checked after the common ones.
type SettingsChecker interface {
	// CheckSettings returns an EINVALID error naming the field that is wrong for this provider.
	CheckSettings(auth string, s domain.SourceSettings) error
}

// Update is the body of creating or changing a source (SPEC §5.4); an absent field keeps its
// value, or on creation its default.
type Update struct {
	Name                *string   `json:"name"`
	Provider            *string   `json:"provider"`
	Auth                *string   `json:"auth"`
	UserIDKeys          *[]string `json:"user_id_keys"`
	AnonymousID         *string   `json:"anonymous_id"`
	Events              *[]string `json:"events"`
	ForwardInitialOpens *bool     `json:"forward_initial_opens"`
	PublicKey           *string   `json:"public_key"`
	Paused              *bool     `json:"paused"`
}

// New returns a tenant's new source as u describes it, with defaults for what u leaves out:
// provider sparkpost, the provider's first auth kind. Errors: EINVALID naming the field.
func (u *Update) New(tenantID string) (*store.Source, error) {
	src := &store.Source{
		ID: domain.NewID("src_"), TenantID: tenantID, Provider: domain.ProviderSparkPost,
		Settings: domain.SourceSettings{UserIDKeys: slices.Clone(DefaultUserIDKeys), AnonymousID: domain.AnonymousSHA256Email, Events: []string{}},
	}
	if u.Provider != nil {
		if Lookup(*u.Provider) == nil {
			return nil, domain.Errorf(domain.EINVALID, "provider: must be one of %s", strings.Join(Providers(), ", "))
		}
		src.Provider = *u.Provider
	}
	auths := Lookup(src.Provider).Auths()
	src.Auth = auths[0]
	if u.Auth != nil {
		if !slices.Contains(auths, *u.Auth) {
			return nil, domain.Errorf(domain.EINVALID, "auth: must be %s for a %s source", orList(auths), src.Provider)
		}
		src.Auth = *u.Auth
	}
	if err := u.Apply(src); err != nil {
		return nil, err
	}
	return src, nil
}

// Apply checks u against the rules of a source of its provider and writes it over src; on an
// error src may be half changed. Provider and auth kind are fixed once a source exists.
// Errors: EINVALID naming the field.
func (u *Update) Apply(src *store.Source) error {
	p := Lookup(src.Provider)
	if p == nil {
		return domain.Errorf(domain.EINVALID, "provider: %q is not a provider this server knows", src.Provider)
	}
	if u.Provider != nil && *u.Provider != src.Provider {
		return domain.Errorf(domain.EINVALID, "provider: cannot be changed; create a new source for another provider")
	}
	if u.Auth != nil && *u.Auth != src.Auth {
		return domain.Errorf(domain.EINVALID, "auth: cannot be changed; create a new source for another auth kind")
	}
	if u.Name != nil || src.Name == "" {
		name, err := domain.CheckName("name", u.Name)
		if err != nil {
			return err
		}
		src.Name = name
	}
	s := &src.Settings
	if u.UserIDKeys != nil {
		keys := *u.UserIDKeys
		if len(keys) == 0 || len(keys) > 20 {
			return domain.Errorf(domain.EINVALID, "user_id_keys: must list 1 to 20 metadata keys")
		}
		for _, k := range keys {
			if strings.TrimSpace(k) == "" || len(k) > 200 {
				return domain.Errorf(domain.EINVALID, "user_id_keys: each key must be a non-empty string of at most 200 characters")
			}
		}
		s.UserIDKeys = keys
	}
	if u.AnonymousID != nil {
		switch *u.AnonymousID {
		case domain.AnonymousSHA256Email, domain.AnonymousEmail, domain.AnonymousSkip:
			s.AnonymousID = *u.AnonymousID
		default:
			return domain.Errorf(domain.EINVALID, "anonymous_id: must be one of sha256_email, email, skip")
		}
	}
	if u.Events != nil {
		if err := CheckTypes("events", p, *u.Events); err != nil {
			return err
		}
		s.Events = *u.Events
	}
	if u.ForwardInitialOpens != nil {
		s.ForwardInitialOpens = *u.ForwardInitialOpens
	}
	if u.PublicKey != nil {
		s.PublicKey = strings.TrimSpace(*u.PublicKey)
	}
	if u.Paused != nil {
		src.Paused = *u.Paused
	}
	if c, ok := p.(SettingsChecker); ok {
		return c.CheckSettings(src.Auth, *s)
	}
	if s.PublicKey != "" {
		return domain.Errorf(domain.EINVALID, "public_key: a %s source has none (only signed webhooks need one)", p.Title())
	}
	return nil
}

// CheckTypes checks that every value of the named parameter is an event type of p.
func CheckTypes(param string, p Provider, types []string) error {
	known := p.Types()
	for _, t := range types {
		if !slices.Contains(known, t) {
			return domain.Errorf(domain.EINVALID, "%s: %q is not a %s event type (one of %s)", param, t, p.Title(), strings.Join(known, ", "))
		}
	}
	return nil
}

// orList joins values as "a or b" / "a, b or c".
func orList(vs []string) string {
	if len(vs) < 2 {
		return strings.Join(vs, "")
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}
