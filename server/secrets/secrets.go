// Package secrets keeps provisiond's NaCl box key pair and seals and opens
// secure param values (models.SecureData, DRP's format). Secure values are
// stored sealed to the server's public key, so the database never holds
// them in plain text; clients may seal values themselves to the key served
// at GET /api/v3/<prefix>/<id>/pubkey.
package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/provisionhq/provision/models"
	"golang.org/x/crypto/nacl/box"
)

// KeyFileName is the key pair file inside the base directory.
const KeyFileName = "secure-params.key"

// ErrCorrupt is returned when a SecureData cannot be opened with the server key.
var ErrCorrupt = errors.New("secure data cannot be opened with this server's key (corrupt or sealed to another key)")

// Keeper holds the server key pair. It is safe for concurrent use.
type Keeper struct {
	public, private [32]byte
}

// LoadOrCreate reads the key pair from dir/KeyFileName, creating it with
// mode 0600 on first use.
func LoadOrCreate(dir string) (*Keeper, error) {
	path := filepath.Join(dir, KeyFileName)
	buf, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(buf) != 64 {
			return nil, fmt.Errorf("secure param key %s: want 64 bytes, found %d", path, len(buf))
		}
		k := &Keeper{}
		copy(k.public[:], buf[:32])
		copy(k.private[:], buf[32:])
		return k, nil
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, fmt.Errorf("read secure param key: %w", err)
	}
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate secure param key: %w", err)
	}
	k := &Keeper{public: *pub, private: *priv}
	tmp := path + ".tmp"
	data := append(append([]byte{}, pub[:]...), priv[:]...)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, fmt.Errorf("write secure param key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("install secure param key: %w", err)
	}
	return k, nil
}

// PublicKey returns a copy of the server's public key (32 bytes).
func (k *Keeper) PublicKey() []byte { return append([]byte{}, k.public[:]...) }

// Seal encrypts the JSON form of value to the server key.
func (k *Keeper) Seal(value any) (*models.SecureData, error) {
	buf, err := json.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("seal: encode value: %w", err)
	}
	return SealTo(k.public[:], buf)
}

// SealTo seals raw JSON bytes to peerPublic with an ephemeral key pair, as
// DRP's SecureData.Seal does. Clients (and tests) use it to send values
// already encrypted.
func SealTo(peerPublic []byte, data []byte) (*models.SecureData, error) {
	if len(peerPublic) != 32 {
		return nil, fmt.Errorf("seal: public key must be 32 bytes, got %d", len(peerPublic))
	}
	var peer [32]byte
	copy(peer[:], peerPublic)
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seal: generate ephemeral key: %w", err)
	}
	var nonce [24]byte
	if _, err := io.ReadFull(rand.Reader, nonce[:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return &models.SecureData{Key: pub[:], Nonce: nonce[:], Payload: box.Seal(nil, data, &nonce, &peer, priv)}, nil
}

// Open decrypts sd with the server key and decodes the JSON value.
func (k *Keeper) Open(sd *models.SecureData) (any, error) {
	if len(sd.Key) != 32 || len(sd.Nonce) != 24 || len(sd.Payload) < box.Overhead {
		return nil, ErrCorrupt
	}
	var peer [32]byte
	var nonce [24]byte
	copy(peer[:], sd.Key)
	copy(nonce[:], sd.Nonce)
	buf, ok := box.Open(nil, sd.Payload, &nonce, &peer, &k.private)
	if !ok {
		return nil, ErrCorrupt
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(buf))
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("open: decode sealed value: %w", err)
	}
	return v, nil
}

// AsSecureData recognises the JSON-decoded form of a SecureData (an object
// with exactly the base64 string fields Key, Nonce and Payload) and returns
// it, or nil and false for any other value.
func AsSecureData(v any) (*models.SecureData, bool) {
	switch t := v.(type) {
	case *models.SecureData:
		return t, t != nil
	case models.SecureData:
		return &t, true
	case map[string]any:
		if len(t) != 3 {
			return nil, false
		}
		sd := &models.SecureData{}
		for name, dst := range map[string]*[]byte{"Key": &sd.Key, "Nonce": &sd.Nonce, "Payload": &sd.Payload} {
			s, ok := t[name].(string)
			if !ok {
				return nil, false
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, false
			}
			*dst = b
		}
		return sd, true
	}
	return nil, false
}

// ToJSONValue converts a SecureData into the generic JSON form stored in a
// Params map (base64 strings), so stored objects decode uniformly.
func ToJSONValue(sd *models.SecureData) map[string]any {
	return map[string]any{
		"Key":     base64.StdEncoding.EncodeToString(sd.Key),
		"Nonce":   base64.StdEncoding.EncodeToString(sd.Nonce),
		"Payload": base64.StdEncoding.EncodeToString(sd.Payload),
	}
}
