package pki

import (
	"archive/zip"
	"fmt"
	"io"
	"time"
)

// DefaultEnrollPort is TAK Server's certificate enrollment port, which
// ATAK uses unless its apiCertEnrollmentPort preference says otherwise.
const DefaultEnrollPort = 8446

// EnrollPackageSpec describes an enrollment data package: the server's
// trust store and a connection that asks the user for a name and password
// and enrolls for a certificate, instead of carrying one.
type EnrollPackageSpec struct {
	// Name labels the package; empty means "enroll@Host".
	Name string
	// Host and Port are the TLS stream server; Port zero means
	// DefaultStreamPort.
	Host string
	Port int
	// EnrollPort is the enrollment port; zero means DefaultEnrollPort. A
	// different port is written as ATAK's apiCertEnrollmentPort.
	EnrollPort int
	// Description labels the connection; empty means Name.
	Description string
	// TruststoreP12 is the CA trust store (TruststoreP12).
	TruststoreP12 []byte
	// Password of the trust store; empty means DefaultP12Password.
	Password string
}

// The enrollment flavours.
const (
	enrollFlavourATAK = iota
	enrollFlavourITAK
)

// EnrollDataPackage writes an ATAK/WinTAK enrollment data package (a
// MANIFEST, config.pref, truststore.p12). The .pref sets, for connection
// 0, enrollForCertificateWithTrust0, useAuth0 and cacheCreds0: ATAK 4.x
// and 5.x prompt for the user name and password on import, enroll on the
// enrollment port trusting the packaged CA, and connect with the issued
// certificate.
func EnrollDataPackage(w io.Writer, spec EnrollPackageSpec) error {
	return writeEnrollPackage(w, spec, enrollFlavourATAK, time.Now())
}

// ITAKEnrollPackage writes the same connection as iTAK imports it: a flat
// zip of config.pref and truststore.p12 with no MANIFEST.
func ITAKEnrollPackage(w io.Writer, spec EnrollPackageSpec) error {
	return writeEnrollPackage(w, spec, enrollFlavourITAK, time.Now())
}

func writeEnrollPackage(w io.Writer, spec EnrollPackageSpec, flavour int, now time.Time) error {
	// The data package checks (host, port, trust store) are shared: a
	// placeholder stands in for the client .p12 it does not carry.
	base, err := DataPackageSpec{Name: spec.Name, Host: spec.Host, Port: spec.Port,
		Description: spec.Description, ClientP12: []byte{0}, TruststoreP12: spec.TruststoreP12,
		Password: spec.Password, ClientName: "enroll"}.withDefaults()
	if err != nil {
		return err
	}
	if spec.EnrollPort < 0 || spec.EnrollPort > 65535 {
		return fmt.Errorf("%w: enrollment port %d", ErrPackage, spec.EnrollPort)
	}
	trust := atakCertDir + truststoreEntry
	streams := []xmlEntry{
		integer("count", 1),
		str("description0", base.Description),
		boolTrue("enabled0"),
		str("connectString0", ConnectString(base.Host, base.Port)),
		str("caLocation0", trust),
		str("caPassword0", base.Password),
		boolTrue("enrollForCertificateWithTrust0"),
		boolTrue("useAuth0"),
		str("cacheCreds0", "Cache credentials"),
	}
	app := []xmlEntry{
		boolTrue("displayServerConnectionWidget"),
		str("caLocation", trust),
		str("caPassword", base.Password),
	}
	if spec.EnrollPort != 0 && spec.EnrollPort != DefaultEnrollPort {
		// ATAK 4.6 reads it as a string (comms/SslNetCotPort.java).
		app = append(app, str("apiCertEnrollmentPort", fmt.Sprint(spec.EnrollPort)))
	}
	pref, err := marshalXML(xmlPreferences{Groups: []xmlPreference{
		{Version: "1", Name: "cot_streams", Entries: streams},
		{Version: "1", Name: "com.atakmap.app_preferences", Entries: app},
	}})
	if err != nil {
		return err
	}
	files := []PackageFile{{Name: prefEntry, Data: pref}, {Name: truststoreEntry, Data: spec.TruststoreP12}}
	if flavour == enrollFlavourITAK {
		return writeZip(w, files, now)
	}
	uid, err := newUUID()
	if err != nil {
		return err
	}
	return writePackage(w, uid, base.Name, nil, files, now)
}

// PackageFile is one file of a data package.
type PackageFile struct {
	Name string // path inside the zip, "/"-separated
	Data []byte
}

// ProfilePackage writes a device profile data package, as TAK Server's
// /tls/profile/enrollment and /device/profile answers: a MANIFEST named
// name with onReceiveImport and onReceiveDelete, and files.
func ProfilePackage(w io.Writer, name string, files []PackageFile) error {
	uid, err := newUUID()
	if err != nil {
		return err
	}
	return writePackage(w, uid, name, []xmlParameter{{Name: "onReceiveImport", Value: "true"}}, files, time.Now())
}

func writePackage(w io.Writer, uid, name string, extra []xmlParameter, files []PackageFile, now time.Time) error {
	entries := make([]string, len(files))
	for i, f := range files {
		if f.Name == manifestEntry {
			return fmt.Errorf("%w: %s is the manifest's name", ErrPackage, f.Name)
		}
		entries[i] = f.Name
	}
	m := xmlManifest{Version: "2", Params: append([]xmlParameter{
		{Name: "uid", Value: uid}, {Name: "name", Value: name}, {Name: "onReceiveDelete", Value: "true"},
	}, extra...)}
	for _, e := range entries {
		m.Contents = append(m.Contents, xmlContent{ZipEntry: e})
	}
	manifest, err := marshalXML(m)
	if err != nil {
		return err
	}
	return writeZip(w, append([]PackageFile{{Name: manifestEntry, Data: manifest}}, files...), now)
}

func writeZip(w io.Writer, files []PackageFile, now time.Time) error {
	zw := zip.NewWriter(w)
	for _, f := range files {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: now})
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.Data); err != nil {
			return err
		}
	}
	return zw.Close()
}
