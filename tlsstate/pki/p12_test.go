package pki

import (
	"crypto"
	"errors"
	"testing"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

func TestClientP12RoundTrip(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(kt.String(), func(t *testing.T) {
			c := chainFor(t, kt)
			der, err := ClientP12(c.client, c.ca, DefaultP12Password)
			if err != nil {
				t.Fatal(err)
			}
			key, cert, cas, err := pkcs12.DecodeChain(der, "atakatak")
			if err != nil {
				t.Fatal(err)
			}
			if !cert.Equal(c.client.Cert) {
				t.Error("wrong certificate")
			}
			if k, ok := key.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !k.Equal(c.client.Key) {
				t.Errorf("wrong key %T", key)
			}
			if len(cas) != 1 || !cas[0].Equal(c.ca.Cert) {
				t.Errorf("chain has %d certificates", len(cas))
			}
			if _, _, _, err := pkcs12.DecodeChain(der, "wrong"); err == nil {
				t.Error("decoded with the wrong password")
			}

			// Empty password means the default.
			der, err = ClientP12(c.client, c.ca, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := pkcs12.DecodeChain(der, DefaultP12Password); err != nil {
				t.Errorf("empty password: %v", err)
			}
		})
	}
}

func TestTruststoreP12RoundTrip(t *testing.T) {
	c := chainFor(t, KeyECDSAP256)
	der, err := TruststoreP12(c.ca, "atakatak")
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pkcs12.DecodeTrustStore(der, "atakatak")
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 1 || !certs[0].Equal(c.ca.Cert) {
		t.Fatalf("truststore holds %d certificates", len(certs))
	}
	// Nothing but the certificate: no key bag.
	if _, _, err := pkcs12.Decode(der, "atakatak"); err == nil {
		t.Error("truststore decodes as a key store")
	}
}

func TestP12Errors(t *testing.T) {
	c, other := chainFor(t, KeyECDSAP256), newChain(t, KeyECDSAP256)
	if _, err := ClientP12(c.client, other.ca, ""); !errors.Is(err, ErrNotIssued) {
		t.Errorf("foreign CA: %v", err)
	}
	if _, err := ClientP12(&Bundle{Cert: c.client.Cert}, c.ca, ""); !errors.Is(err, ErrNoPrivateKey) {
		t.Errorf("no key: %v", err)
	}
	if _, err := ClientP12(c.client, nil, ""); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("no CA: %v", err)
	}
	if _, err := TruststoreP12(&Bundle{}, ""); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("empty truststore: %v", err)
	}
}
