package auth

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchboard-hub/switchboard/internal/domain"
)

// Keys are the two keys Switchboard needs: one signs JWTs, one seals secrets at rest.
type Keys struct {
	JWT        []byte
	Encryption []byte
	// Generated lists the key files created by this call (empty when both existed or came from env).
	Generated []string
}

// LoadKeys returns the keys from the environment values when set, otherwise from files in dataDir,
// generating each missing file (mode 0600) once so that later starts and the offline `token`
// command use the same keys.
//
// jwtSecret is used as given (at least 32 bytes); encryptionKey must be 32 bytes written as 64 hex
// characters or as base64.
func LoadKeys(dataDir, jwtSecret, encryptionKey string) (*Keys, error) {
	k := &Keys{}
	var err error
	if jwtSecret != "" {
		if len(jwtSecret) < 32 {
			return nil, errors.New("SWITCHBOARD_JWT_SECRET must be at least 32 characters")
		}
		k.JWT = []byte(jwtSecret)
	} else if k.JWT, err = k.loadOrCreate(filepath.Join(dataDir, "jwt.key")); err != nil {
		return nil, err
	}
	if encryptionKey != "" {
		if k.Encryption, err = decodeKey(encryptionKey); err != nil {
			return nil, fmt.Errorf("SWITCHBOARD_ENCRYPTION_KEY: %w", err)
		}
	} else if k.Encryption, err = k.loadOrCreate(filepath.Join(dataDir, "encryption.key")); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Keys) loadOrCreate(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		key := domain.RandomBytes(32)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create key file: %w", err)
		}
		_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("write key file %s: %w", path, err)
		}
		k.Generated = append(k.Generated, path)
		return key, nil
	} else if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	key, err := decodeKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return key, nil
}

func decodeKey(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, errors.New("must be 32 bytes as 64 hex characters or base64")
}
