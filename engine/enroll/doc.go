// Package enroll is certificate enrollment, TAK Server's port 8446: a TAK
// client proves who it is with HTTP Basic (a users-file password, or a
// one-time token from `cotd users token`) over TLS without a client
// certificate, sends a CSR whose CN is that user, and gets a client
// certificate signed by the CA, which it then uses on the TLS stream port.
//
// The endpoints and their formats follow what real clients parse (see
// handlers.go): GET /Marti/api/tls/config (ATAK 5.5 aborts unless the root
// is certificateConfig with a nameEntries child), POST
// /Marti/api/tls/signClient (a PKCS#12 of signedCert and ca0…, ATAK 4.x),
// POST /Marti/api/tls/signClient/v2 (JSON or XML by Accept: ATAK 5.x asks
// for XML, iTAK for JSON) and GET /Marti/api/tls/profile/enrollment.
//
// Every issued certificate is recorded per user (serial, client uid,
// expiry) in a [Store]; the file-backed [FileStore] keeps it next to the
// users file. Revocation rewrites the CRL ([Revoke]); a running server
// notices the new CRL ([Watcher]), reloads TLS so that the handshake
// refuses the certificate, and closes the connections of its user through
// the engine's Directory.
//
// Failed logins are throttled per source address and per user ([throttle])
// so that guessing costs time while the real user, from another address,
// still gets in.
package enroll
