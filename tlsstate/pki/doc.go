// Package pki makes and stores the certificates of a TAK deployment: a CA,
// server certificates for the TLS stream port, client certificates whose CN
// is the TAK user name, cluster node certificates (serverAuth and
// clientAuth: both ends of a NATS route present one), the PKCS#12 files
// ATAK, WinTAK and iTAK import, and the connection data package (a zip)
// that sets a client up in one step.
//
// # Shape of the PKI
//
// One self-signed root CA signs every leaf directly (MaxPathLen 0). The
// server presents only its leaf; clients trust the CA through a truststore
// .p12. TAK clients identify users by the client certificate's CN, so
// IssueClient takes the user name as CN.
//
// Keys are ECDSA P-256 by default (KeyECDSAP256) or RSA-2048 (KeyRSA2048,
// what TAK Server's own scripts make, for clients that need it). Both are
// signed with SHA-256. Serial numbers are 128 random bits; NotBefore is an
// hour in the past because handsets often run with a skewed clock; a leaf
// never outlives the CA that signed it. Leaves default to 825 days, the
// longest validity Apple platforms (iTAK) accept for a TLS server
// certificate.
//
// # Files
//
// Save writes NAME.pem (0644) and NAME.key (0600, PKCS#8) through a temp
// file and a rename, key first, so a certificate file on disk always has its
// key next to it. Load also reads SEC1 ("EC PRIVATE KEY") and PKCS#1 ("RSA
// PRIVATE KEY") keys, as made by openssl and TAK Server's scripts.
//
// EnsureDev gives `cotd serve` a working development PKI when no
// certificates are configured: it creates one the first time and loads it
// every time after.
//
// # Time
//
// ExpiresWithin and TimeLeft take now as a parameter. The issuing functions
// read the clock themselves; they are thin wrappers over unexported ones that
// take now, which the tests use.
//
// The package imports only the standard library and go-pkcs12, never a
// cotd package (TestImports).
package pki
