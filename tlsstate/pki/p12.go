package pki

import (
	"crypto/x509"
	"fmt"
	"strings"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// DefaultP12Password is the password TAK Server, ATAK, WinTAK and iTAK use
// for PKCS#12 files unless told otherwise. It only stops accidental import:
// whoever holds the file holds the key, so protect the file, not the password.
const DefaultP12Password = "atakatak"

// p12Encoder is go-pkcs12's LegacyDES: keys and certificates encrypted with
// PBE-SHA1-3DES (2048 iterations), HMAC-SHA1 MAC, the parameters of OpenSSL's
// -descert.
//
// The readers that matter are ones we cannot test here: the BouncyCastle
// bundled with whatever Android release an ATAK handset runs, and the
// Windows certificate import WinTAK relies on. So we stay with what TAK
// Server itself hands them: its API process runs with
// -Dkeystore.pkcs12.legacy (TAK-Product-Center/Server,
// src/takserver-core/scripts/API/takserver-api.sh), which makes Java write
// the SHA1/3DES family of PKCS#12. Why not the others:
//   - Modern2023/Modern2026 (PBES2, AES-256-CBC, PBKDF2-SHA256, PBMAC1) are
//     readable only from OpenSSL 1.1.1, Java 12 and Windows Server 2019 on
//     (go-pkcs12's own documentation); older Android and Windows releases
//     predate them.
//   - LegacyRC2 (Java's legacy choice) encrypts certificates with 40-bit
//     RC2, which OpenSSL 3 reads only with its legacy provider; 3DES for
//     the certificates too is readable by strictly more software.
//
// 3DES-SHA1 is weak by modern standards, which does not matter here: with a
// well-known password (DefaultP12Password) the encryption is not what
// protects the key; file permissions and handling are.
var p12Encoder = pkcs12.LegacyDES

// ClientP12 encodes client's key and certificate with ca's certificate as the
// chain: what ATAK's certificateLocation and WinTAK's client certificate
// import expect. client must have been issued by ca. password empty means
// DefaultP12Password.
func ClientP12(client, ca *Bundle, password string) ([]byte, error) {
	if client == nil || client.Cert == nil || client.Key == nil {
		return nil, ErrNoPrivateKey
	}
	if ca == nil || ca.Cert == nil {
		return nil, fmt.Errorf("%w: no CA certificate", ErrNoCertificate)
	}
	if err := client.Cert.CheckSignatureFrom(ca.Cert); err != nil {
		return nil, fmt.Errorf("%w: %q by %q: %w", ErrNotIssued,
			client.Cert.Subject.CommonName, ca.Cert.Subject.CommonName, err)
	}
	if password == "" {
		password = DefaultP12Password
	}
	der, err := p12Encoder.Encode(client.Key, client.Cert, []*x509.Certificate{ca.Cert}, password)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrP12, err)
	}
	return der, nil
}

// TruststoreP12 encodes ca's certificate alone, as a trusted-certificate
// entry: ATAK's caLocation truststore. password empty means
// DefaultP12Password.
//
// The entry carries a friendly name (the CA's CN, lower-cased, or "ca")
// because a Java-style PKCS12 KeyStore, BouncyCastle's included, lists a
// certificate bag that has neither a key nor an alias under no alias at all,
// which leaves the truststore looking empty.
func TruststoreP12(ca *Bundle, password string) ([]byte, error) {
	if ca == nil || ca.Cert == nil {
		return nil, fmt.Errorf("%w: no CA certificate", ErrNoCertificate)
	}
	if password == "" {
		password = DefaultP12Password
	}
	alias := strings.ToLower(strings.TrimSpace(ca.Cert.Subject.CommonName))
	if alias == "" {
		alias = "ca"
	}
	der, err := p12Encoder.EncodeTrustStoreEntries(
		[]pkcs12.TrustStoreEntry{{Cert: ca.Cert, FriendlyName: alias}}, password)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrP12, err)
	}
	return der, nil
}
