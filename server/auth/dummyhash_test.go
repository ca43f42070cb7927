package auth

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestDummyHash checks that the constant compared against for unknown
// users is a valid bcrypt hash of the default cost, so that a failed
// login of an unknown user costs as much as one of a real user.
func TestDummyHash(t *testing.T) {
	cost, err := bcrypt.Cost([]byte(dummyHash))
	if err != nil {
		t.Fatalf("dummyHash is not a bcrypt hash: %v", err)
	}
	if cost != bcrypt.DefaultCost {
		t.Fatalf("dummyHash cost %d, want bcrypt.DefaultCost %d", cost, bcrypt.DefaultCost)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(dummyHash), []byte("not a real password")); err != nil {
		t.Fatalf("dummyHash does not match its password: %v", err)
	}
}
