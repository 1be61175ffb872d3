package store_test

import (
	"context"
	"testing"

	"github.com/switchboard-hub/switchboard/internal/domain"
	"github.com/switchboard-hub/switchboard/internal/store"
)

// A source's provider and its SendGrid public key come back from every read (Source,
// SourceByID, Sources); a source that names no provider is SparkPost's; the provider is fixed at
// creation, so an update of the settings keeps it; and a source checked by its signature alone
// is stored without a credential.
func TestSourceProviderAndPublicKey(t *testing.T) {
	db := MustOpenDB(t)
	ctx := context.Background()
	tn, err := db.CreateTenant(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	sp := &store.Source{ID: domain.NewID("src_"), TenantID: tn.ID, Name: "sp", Auth: domain.AuthBasic}
	if err := db.CreateSource(ctx, sp, "spu_user", "hash"); err != nil || sp.Provider != domain.ProviderSparkPost {
		t.Fatalf("CreateSource without a provider: %v, provider %q; want %q", err, sp.Provider, domain.ProviderSparkPost)
	}
	sg := &store.Source{ID: domain.NewID("src_"), TenantID: tn.ID, Name: "sg", Provider: domain.ProviderSendGrid,
		Auth: domain.AuthSignature, Settings: store.SourceSettings{PublicKey: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"}}
	if err := db.CreateSource(ctx, sg, "", ""); err != nil {
		t.Fatal(err)
	}

	type view struct{ provider, publicKey, auth string }
	check := func(when string, want map[string]view) {
		t.Helper()
		for id, w := range want {
			a, err := db.Source(ctx, tn.ID, id)
			if err != nil {
				t.Fatalf("%s: Source(%s): %v", when, id, err)
			}
			if got := (view{a.Provider, a.Settings.PublicKey, a.Auth}); got != w {
				t.Errorf("%s: Source(%s) = %+v, want %+v", when, id, got, w)
			}
			b, err := db.SourceByID(ctx, id)
			if err != nil {
				t.Fatalf("%s: SourceByID(%s): %v", when, id, err)
			}
			if got := (view{b.Provider, b.Settings.PublicKey, b.Auth}); got != w {
				t.Errorf("%s: SourceByID(%s) = %+v, want %+v", when, id, got, w)
			}
		}
		list, total, err := db.Sources(ctx, tn.ID, store.Page{Limit: 10})
		if err != nil || len(list) != len(want) || total != len(want) {
			t.Fatalf("%s: Sources = %d of %d, %v; want %d", when, len(list), total, err, len(want))
		}
		for _, s := range list {
			if got := (view{s.Provider, s.Settings.PublicKey, s.Auth}); got != want[s.ID] {
				t.Errorf("%s: Sources has %s as %+v, want %+v", when, s.ID, got, want[s.ID])
			}
		}
	}
	key := sg.Settings.PublicKey
	check("created", map[string]view{
		sp.ID: {domain.ProviderSparkPost, "", domain.AuthBasic},
		sg.ID: {domain.ProviderSendGrid, key, domain.AuthSignature},
	})

	if creds, err := db.SourceCredentials(ctx, sg.ID); err != nil || len(creds) != 0 {
		t.Errorf("a signature source has credentials %+v (%v); it must have none", creds, err)
	}
	if creds, err := db.SourceCredentials(ctx, sp.ID); err != nil || len(creds) != 1 || creds[0].Username != "spu_user" {
		t.Errorf("the basic source's credentials are %+v (%v); want its one", creds, err)
	}

	// A new key (SendGrid rotates its signing key pair on request) is saved; the provider stays.
	key2 := "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAF"
	sg.Settings.PublicKey = key2
	sg.Provider = "" // not written by UpdateSource: the provider is fixed at creation
	if err := db.UpdateSource(ctx, sg); err != nil {
		t.Fatal(err)
	}
	sp.Settings.Events = []string{"delivery"}
	if err := db.UpdateSource(ctx, sp); err != nil {
		t.Fatal(err)
	}
	check("updated", map[string]view{
		sp.ID: {domain.ProviderSparkPost, "", domain.AuthBasic},
		sg.ID: {domain.ProviderSendGrid, key2, domain.AuthSignature},
	})
}
