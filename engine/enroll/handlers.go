package enroll

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rs/zerolog"

	"cotd/engine/auth"
	"cotd/tlsstate/pki"
)

// The endpoints, TAK Server's paths.
const (
	pathConfig   = "/Marti/api/tls/config"
	pathSignV1   = "/Marti/api/tls/signClient"
	pathSignV2   = "/Marti/api/tls/signClient/v2"
	pathProfile  = "/Marti/api/tls/profile/enrollment"
	realm        = `Basic realm="cotd enrollment", charset="UTF-8"`
	maxProfile   = 16 << 20
	maxClientUID = 256
)

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathConfig, s.authed(s.serveConfig, false))
	mux.HandleFunc("POST "+pathSignV1, s.authed(s.serveSignV1, true))
	mux.HandleFunc("POST "+pathSignV2, s.authed(s.serveSignV2, true))
	mux.HandleFunc("GET "+pathProfile, s.authed(s.serveProfile, false))
	allowed := map[string]string{pathConfig: "GET", pathSignV1: "POST", pathSignV2: "POST", pathProfile: "GET"}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := allowed[r.URL.Path]; ok {
			w.Header().Set("Allow", m)
			s.refuse(w, r, "", RefusedBadRequest, http.StatusMethodNotAllowed, r.URL.Path+" takes "+m, nil)
			return
		}
		s.refuse(w, r, "", RefusedBadRequest, http.StatusNotFound, "no such enrollment endpoint", nil)
	})
	return mux
}

// caller is who a request authenticated as.
type caller struct {
	user  string
	token string // the one-time token used as the password; "" for a password
	src   netip.Addr
}

// authed checks HTTP Basic (a password, or a one-time token as the
// password) under the throttle, then runs h. signs says whether h issues
// a certificate: a token that already signed one may only read.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, caller), signs bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := caller{src: remoteAddr(r)}
		user, password, ok := r.BasicAuth()
		if !ok || user == "" {
			w.Header().Set("WWW-Authenticate", realm)
			s.refuse(w, r, "", RefusedNoCredentials, http.StatusUnauthorized, "HTTP Basic credentials required", nil)
			return
		}
		c.user = user
		if ok, wait := s.thr.allow(c.src, user); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			s.refuse(w, r, user, RefusedThrottled, http.StatusTooManyRequests,
				"too many failed logins; retry later", nil)
			return
		}
		token, err := s.check(user, password, signs)
		if errors.Is(err, errUnavailable) {
			// The server's fault, not the caller's: no throttling, a 500.
			s.refuse(w, r, user, RefusedInternal, http.StatusInternalServerError, "internal error", err)
			return
		}
		if err != nil {
			reason := RefusedBadCredentials
			if errors.Is(err, errTokenUsed) {
				reason = RefusedTokenUsed
			}
			s.thr.fail(c.src, user)
			w.Header().Set("WWW-Authenticate", realm)
			s.refuse(w, r, user, reason, http.StatusUnauthorized, "bad user name or password", err)
			return
		}
		s.thr.succeed(c.src, user)
		if token {
			c.token = password
		}
		h(w, r, c)
	}
}

var (
	errTokenUsed   = errors.New("enroll: one-time token already used")
	errUnavailable = errors.New("enroll: users or state unavailable")
)

// check verifies user's password, or password as a one-time token. It
// reports whether it was a token. errUnavailable (wrapped) means the
// server could not decide.
func (s *Server) check(user, password string, signs bool) (token bool, err error) {
	d, err := s.users.get()
	switch {
	case err != nil && d == nil:
		return false, fmt.Errorf("%w: %w", errUnavailable, err)
	case err != nil:
		// Mid-edit by hand: the last good users file still answers.
		s.log.Warn().Err(err).Msg("users file does not load; using the last good one")
	}
	u, known := d.Lookup(user)
	if s.store != nil && known && !u.Disabled {
		st, err := s.store.CheckToken(user, password, time.Now())
		switch {
		case err != nil:
			return false, fmt.Errorf("%w: %w", errUnavailable, err)
		case st == TokenUnused, st == TokenJustUsed && !signs:
			return true, nil
		case st == TokenJustUsed:
			return false, errTokenUsed
		}
	}
	if !known {
		u = nil // still compared: timing does not tell which names exist
	}
	// bcrypt costs tens of milliseconds of CPU: at most GOMAXPROCS at once.
	s.checks <- struct{}{}
	defer func() { <-s.checks }()
	return false, auth.CheckPassword(u, password)
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a
	}
	return ap.Addr()
}

// refuse answers a refusal, counts it and logs it with who asked.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, user string, why Refusal, status int, msg string, err error) {
	s.stats.Refused[why].Inc()
	lvl := zerolog.WarnLevel
	if why == RefusedNoCredentials {
		lvl = zerolog.DebugLevel // every client's first probe may lack them
	}
	ev := s.log.WithLevel(lvl).Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Str("reason", why.String()).Int("status", status)
	if user != "" {
		ev = ev.Str("user", user)
	}
	if err != nil {
		ev = ev.Err(err)
	}
	ev.Msg("enrollment refused")
	http.Error(w, msg, status)
}

// xmlCertificateConfig is TAK Server's answer to tls/config. ATAK 5.5
// aborts enrollment unless the root's local name is certificateConfig and
// it has a nameEntries child, even an empty one.
type xmlCertificateConfig struct {
	XMLName      xml.Name       `xml:"certificateConfig"`
	ValidityDays int            `xml:"validityDays,attr,omitempty"`
	NameEntries  xmlNameEntries `xml:"nameEntries"`
}

type xmlNameEntries struct {
	Entries []xmlNameEntry `xml:"nameEntry"`
}

type xmlNameEntry struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

func (s *Server) serveConfig(w http.ResponseWriter, _ *http.Request, _ caller) {
	c := xmlCertificateConfig{ValidityDays: int(s.cfg.Validity.Hours() / 24)}
	if s.cfg.O != "" {
		c.NameEntries.Entries = append(c.NameEntries.Entries, xmlNameEntry{"O", s.cfg.O})
	}
	if s.cfg.OU != "" {
		c.NameEntries.Entries = append(c.NameEntries.Entries, xmlNameEntry{"OU", s.cfg.OU})
	}
	out, err := xml.Marshal(c)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`+"\n")
	_, _ = w.Write(out)
}

// issued is a certificate signed for a request, with the CA chain.
type issued struct {
	cert  *x509.Certificate
	chain []*x509.Certificate
}

// sign reads the CSR, checks it against the caller and signs it. It has
// answered the request when it returns nil.
func (s *Server) sign(w http.ResponseWriter, r *http.Request, c caller) *issued {
	uid := queryParam(r, "clientUid")
	if len(uid) > maxClientUID || strings.IndexFunc(uid, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		s.refuse(w, r, c.user, RefusedBadRequest, http.StatusBadRequest, "bad clientUid", nil)
		return nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxBodyBytes)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.refuse(w, r, c.user, RefusedTooLarge, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("CSR larger than %d bytes", s.cfg.MaxBodyBytes), err)
		} else {
			s.refuse(w, r, c.user, RefusedBadRequest, http.StatusBadRequest, "cannot read the request body", err)
		}
		return nil
	}
	csr, err := pki.ParseCSR(body)
	if err != nil {
		s.refuse(w, r, c.user, RefusedBadCSR, http.StatusBadRequest, "bad certificate signing request", err)
		return nil
	}
	if cn := csr.Subject.CommonName; cn != c.user {
		s.refuse(w, r, c.user, RefusedWrongCN, http.StatusForbidden,
			fmt.Sprintf("the CSR's CN %q is not the user %q", cn, c.user), nil)
		return nil
	}
	if err := (pki.CSRPolicy{MinRSABits: s.cfg.MinRSABits}).CheckKey(csr); err != nil {
		s.refuse(w, r, c.user, RefusedKey, http.StatusBadRequest, err.Error(), err)
		return nil
	}
	if c.token != "" {
		ok, err := s.store.ConsumeToken(c.user, c.token, time.Now())
		if err != nil {
			s.refuse(w, r, c.user, RefusedInternal, http.StatusInternalServerError, "internal error", err)
			return nil
		}
		if !ok { // another request used it between the check and now
			s.thr.fail(c.src, c.user)
			s.refuse(w, r, c.user, RefusedTokenUsed, http.StatusUnauthorized, "bad user name or password", errTokenUsed)
			return nil
		}
	}
	st := s.ca.Load()
	subject := pkix.Name{CommonName: c.user}
	if s.cfg.O != "" {
		subject.Organization = []string{s.cfg.O}
	}
	if s.cfg.OU != "" {
		subject.OrganizationalUnit = []string{s.cfg.OU}
	}
	cert, err := st.ca.SignClientCSR(csr, subject, s.cfg.Validity.Duration)
	if err != nil {
		s.refuse(w, r, c.user, RefusedInternal, http.StatusInternalServerError, "internal error", err)
		return nil
	}
	fp := sha256.Sum256(cert.Raw)
	rec := CertRecord{User: c.user, Serial: cert.SerialNumber.String(), ClientUID: uid,
		SubjectDN: cert.Subject.String(), Fingerprint: hex.EncodeToString(fp[:]),
		Issued: time.Now().UTC().Truncate(time.Second), NotAfter: cert.NotAfter}
	if err := s.store.RecordCert(rec); err != nil {
		// Unrecorded means unrevocable by name: the certificate is not
		// handed out.
		s.refuse(w, r, c.user, RefusedInternal, http.StatusInternalServerError, "internal error", err)
		return nil
	}
	s.stats.Issued.Inc()
	s.log.Info().Str("user", c.user).Str("client_uid", uid).Str("serial", rec.Serial).
		Time("not_after", cert.NotAfter).Bool("token", c.token != "").Str("remote", r.RemoteAddr).
		Str("path", r.URL.Path).Msg("client certificate issued")
	return &issued{cert: cert, chain: st.chain}
}

// serveSignV1 answers with a PKCS#12 of the certificate ("signedCert")
// and the CA chain ("ca0"…), as ATAK 4.x reads it.
func (s *Server) serveSignV1(w http.ResponseWriter, r *http.Request, c caller) {
	// Built before signing would be better, but it needs the certificate;
	// an encoding failure after issuance is logged and the record stays.
	is := s.sign(w, r, c)
	if is == nil {
		return
	}
	certs := []pki.NamedCert{{Alias: "signedCert", Cert: is.cert}}
	for i, ca := range is.chain {
		certs = append(certs, pki.NamedCert{Alias: "ca" + strconv.Itoa(i), Cert: ca})
	}
	p12, err := pki.CertsP12(certs, pki.DefaultP12Password)
	if err != nil {
		s.refuse(w, r, c.user, RefusedInternal, http.StatusInternalServerError, "internal error", err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(p12)
}

// v2 response formats.
const (
	formatJSON = iota
	formatXML
	formatNone
)

// v2Format reads Accept as TAK Server does: nothing, */* or JSON gives
// JSON; XML gives XML (what ATAK 5.x asks for); anything else nothing.
func v2Format(accept string) int {
	if strings.TrimSpace(accept) == "" {
		return formatJSON
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "*/*", "application/*", "application/json":
			return formatJSON
		case "application/xml", "text/xml":
			return formatXML
		}
	}
	return formatNone
}

// serveSignV2 answers with base64 DER, wrapped at 64 columns without PEM
// lines: JSON {"signedCert":…,"ca0":…} or XML <enrollment><signedCert/>
// <ca/>…</enrollment>.
func (s *Server) serveSignV2(w http.ResponseWriter, r *http.Request, c caller) {
	format := v2Format(r.Header.Get("Accept"))
	if format == formatNone {
		// Refused before signing: nothing is issued that cannot be sent.
		s.refuse(w, r, c.user, RefusedAccept, http.StatusNotAcceptable,
			"signClient/v2 answers application/json or application/xml", nil)
		return
	}
	is := s.sign(w, r, c)
	if is == nil {
		return
	}
	var buf bytes.Buffer
	if format == formatXML {
		buf.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n<enrollment><signedCert>")
		_ = xml.EscapeText(&buf, []byte(pki.Base64Wrapped(is.cert.Raw)))
		buf.WriteString("</signedCert>")
		for _, ca := range is.chain {
			buf.WriteString("<ca>")
			_ = xml.EscapeText(&buf, []byte(pki.Base64Wrapped(ca.Raw)))
			buf.WriteString("</ca>")
		}
		buf.WriteString("</enrollment>\n")
		w.Header().Set("Content-Type", "application/xml")
	} else {
		// Written by hand to keep signedCert first, as TAK Server does.
		buf.WriteString("{\n  \"signedCert\": ")
		writeJSONString(&buf, pki.Base64Wrapped(is.cert.Raw))
		for i, ca := range is.chain {
			fmt.Fprintf(&buf, ",\n  \"ca%d\": ", i)
			writeJSONString(&buf, pki.Base64Wrapped(ca.Raw))
		}
		buf.WriteString("\n}\n")
		w.Header().Set("Content-Type", "application/json")
	}
	_, _ = w.Write(buf.Bytes())
}

func writeJSONString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s)
	buf.Write(b)
}

// serveProfile sends enroll.profile_dir as a data package, or 204.
func (s *Server) serveProfile(w http.ResponseWriter, r *http.Request, c caller) {
	if s.profileD == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	files, err := profileFiles(s.profileD, maxProfile)
	if err == nil && len(files) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var buf bytes.Buffer
	if err == nil {
		err = pki.ProfilePackage(&buf, "Enrollment", files)
	}
	if err != nil {
		s.refuse(w, r, c.user, RefusedInternal, http.StatusInternalServerError, "internal error", err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename=profile.zip`)
	_, _ = w.Write(buf.Bytes())
}

// queryParam matches the name case-insensitively: ATAK 4.8 sent clientUID.
func queryParam(r *http.Request, name string) string {
	for k, v := range r.URL.Query() {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
