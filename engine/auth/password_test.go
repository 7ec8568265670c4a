package auth

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestCheckPassword(t *testing.T) {
	long := strings.Repeat("p", 72)
	longHash, err := bcrypt.GenerateFromPassword([]byte(long), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		u        *User
		password string
		want     error
	}{
		{"right", &User{Name: "a", PasswordHash: testHash}, "secret", nil},
		{"wrong", &User{Name: "a", PasswordHash: testHash}, "Secret", ErrBadPassword},
		{"empty", &User{Name: "a", PasswordHash: testHash}, "", ErrBadPassword},
		{"disabled right", &User{Name: "a", PasswordHash: testHash, Disabled: true}, "secret", ErrDisabled},
		{"disabled wrong", &User{Name: "a", PasswordHash: testHash, Disabled: true}, "nope", ErrDisabled},
		{"no hash", &User{Name: "a"}, "secret", ErrNoPassword},
		{"unknown user", nil, "secret", ErrBadPassword},
		{"72 bytes", &User{Name: "a", PasswordHash: string(longHash)}, long, nil},
		{"past bcrypt's 72 bytes", &User{Name: "a", PasswordHash: string(longHash)}, long + "x", ErrBadPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckPassword(tt.u, tt.password); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("CheckPassword = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDummyHashIsValid(t *testing.T) {
	if err := checkHash(dummyHash); err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost([]byte(dummyHash)); c != bcrypt.DefaultCost {
		t.Errorf("dummy hash cost %d, want DefaultCost %d so that unknown users cost as much as known ones", c, bcrypt.DefaultCost)
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkHash(h); err != nil {
		t.Errorf("HashPassword output fails validation: %v", err)
	}
	if c, _ := bcrypt.Cost([]byte(h)); c != bcrypt.DefaultCost {
		t.Errorf("cost %d", c)
	}
	u := &User{Name: "a", PasswordHash: h}
	if err := CheckPassword(u, "correct horse"); err != nil {
		t.Errorf("CheckPassword of own hash: %v", err)
	}

	if _, err := HashPassword(""); !errors.Is(err, ErrEmptyPassword) {
		t.Errorf("empty: %v", err)
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); !errors.Is(err, ErrPasswordTooLong) || !strings.Contains(err.Error(), "72") {
		t.Errorf("73 bytes: %v", err)
	}
}
