package pki

import "errors"

// Sentinel errors. Functions wrap them with %w and the detail (a path, a
// name, the underlying cause), so callers classify with errors.Is.
var (
	// ErrKeyType: a key type name ParseKeyType does not know.
	ErrKeyType = errors.New("pki: unknown key type")

	// ErrValidity: a negative validity period.
	ErrValidity = errors.New("pki: validity must not be negative")

	// ErrName: an empty common name, or a file name that is empty, "." or
	// "..", or contains a path separator.
	ErrName = errors.New("pki: invalid name")

	// ErrNoHosts: IssueServer or IssueNode with no host names or addresses.
	ErrNoHosts = errors.New("pki: server certificate needs at least one host")

	// ErrNotCA: the issuing bundle is not a CA certificate or has no key.
	ErrNotCA = errors.New("pki: bundle is not a CA with a private key")

	// ErrNoPrivateKey: a bundle without a private key where one is needed.
	ErrNoPrivateKey = errors.New("pki: bundle has no private key")

	// ErrNoCertificate: PEM data without a CERTIFICATE block, or one that
	// does not parse.
	ErrNoCertificate = errors.New("pki: no certificate")

	// ErrPrivateKey: PEM data without a usable private key (missing,
	// encrypted, malformed, or not ECDSA/RSA).
	ErrPrivateKey = errors.New("pki: no usable private key")

	// ErrKeyMismatch: the private key does not belong to the certificate.
	ErrKeyMismatch = errors.New("pki: private key does not match certificate")

	// ErrNotIssued: a client certificate packaged with a CA that did not sign
	// it.
	ErrNotIssued = errors.New("pki: certificate not issued by this CA")

	// ErrNoCA: LoadCA found no ca.pem/ca.key in the directory.
	ErrNoCA = errors.New("pki: no CA in directory")

	// ErrCAExists: CreateCA would overwrite an existing CA.
	ErrCAExists = errors.New("pki: CA already exists")

	// ErrIncompleteDev: EnsureDev found some but not all of its files.
	ErrIncompleteDev = errors.New("pki: incomplete development certificate directory")

	// ErrPackage: a DataPackageSpec that cannot make a working package.
	ErrPackage = errors.New("pki: invalid data package")

	// ErrP12: PKCS#12 encoding failed.
	ErrP12 = errors.New("pki: PKCS#12 encoding failed")

	// ErrCSR: a certificate signing request that does not parse or whose
	// signature does not verify.
	ErrCSR = errors.New("pki: bad certificate signing request")

	// ErrCSRKey: a CSR whose key type or size is refused.
	ErrCSRKey = errors.New("pki: refused CSR key")

	// ErrCRL: a revocation list that cannot be made, read or trusted.
	ErrCRL = errors.New("pki: bad certificate revocation list")
)
