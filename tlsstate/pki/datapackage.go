package pki

import (
	"archive/zip"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// DefaultStreamPort is the TAK TLS stream port (8089).
const DefaultStreamPort = 8089

// Layout of a connection data package. What ATAK does with it, from the
// ATAK-CIV sources (deptofdefense/AndroidTacticalAssaultKit-CIV; classes
// under atak/ATAK/app/src/main/java unless noted):
//   - com.atakmap.android.missionpackage.file.MissionPackageBuilder: the
//     manifest is the zip entry MANIFEST/manifest.xml, written first.
//   - ...missionpackage.file.MissionPackageManifest, ...Configuration,
//     ...Content: the manifest is <MissionPackageManifest version="2"> with
//     <Configuration> holding <Parameter name= value=> pairs (uid and name
//     required, onReceiveDelete/onReceiveImport optional) and <Contents>
//     holding one <Content zipEntry= ignore=> per file.
//   - com.atakmap.android.importfiles.sort.ImportPrefSort: a .pref is
//     recognised by content; it must contain "<preferences" and "<entry key".
//   - com.atakmap.app.preferences.PreferenceControl: each <preference name=>
//     is a SharedPreferences group; "com.atakmap.app_preferences" maps to the
//     app's defaults; "cot_streams" entries count, descriptionN, enabledN and
//     connectStringN become stream connections; an entry's class attribute
//     ("class java.lang.String", "class java.lang.Boolean",
//     "class java.lang.Integer") picks the value type.
//   - com.atakmap.android.importfiles.sort.ImportCertSort: .p12 files are
//     copied into ATAK's "cert" directory, then caLocation/caPassword and
//     certificateLocation/clientPassword are read from the app preferences;
//     com.atakmap.net.AtakCertificateDatabase.importCertificateFromPreferences
//     resolves a location relative to the ATAK root, hence "cert/<file>.p12".
//   - com.atakmap.comms.NetConnectString (parseConnectString): a connect
//     string is split on ":" into host, port and protocol, so an IPv6 literal
//     cannot be expressed.
//
// OpenTAKServer's certificate_authority.py and pvarki/python-tak-rmapi's
// templates write the same manifest and .pref shape. The zip entries are
// flat (a folder would not change where ATAK puts them) and the .pref, the
// truststore and the client .p12 use fixed names.
const (
	manifestEntry   = "MANIFEST/manifest.xml"
	prefEntry       = "config.pref"
	truststoreEntry = "truststore.p12"
	atakCertDir     = "cert/"
)

// DataPackageSpec describes a connection data package.
type DataPackageSpec struct {
	// Name is the package name clients list. Empty means ClientName@Host.
	Name string
	// Host is the server's DNS name or IPv4 address as clients reach it.
	// Required; IPv6 literals are rejected (see NetConnectString above).
	Host string
	// Port is the TLS stream port. Zero means DefaultStreamPort.
	Port int
	// Description labels the connection in the client. Empty means Name.
	Description string
	// ClientP12 is the client identity (ClientP12). Required.
	ClientP12 []byte
	// TruststoreP12 is the CA truststore (TruststoreP12). Required.
	TruststoreP12 []byte
	// Password opens both .p12 files. Empty means DefaultP12Password.
	Password string
	// ClientName names the client .p12 entry, ClientName.p12. Empty means
	// "client".
	ClientName string
}

// DataPackage writes spec as an ATAK connection data package (a zip):
// MANIFEST/manifest.xml, config.pref (one TLS stream plus the certificate
// locations and passwords), truststore.p12 and CLIENT.p12. ATAK imports it
// as a whole (Import Manager, or opening the zip); the .pref keys are also
// the ones OpenTAKServer puts in its iTAK package (opentakserver
// certificate_authority.py). onReceiveDelete makes an ATAK that received the
// package over the network delete the zip after import: it holds a private
// key.
func DataPackage(w io.Writer, spec DataPackageSpec) error {
	uid, err := newUUID()
	if err != nil {
		return err
	}
	return writeDataPackage(w, spec, uid, time.Now())
}

func writeDataPackage(w io.Writer, spec DataPackageSpec, uid string, now time.Time) error {
	spec, err := spec.withDefaults()
	if err != nil {
		return err
	}
	clientEntry := spec.ClientName + ".p12"
	pref, err := prefXML(spec, clientEntry)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{prefEntry, pref},
		{truststoreEntry, spec.TruststoreP12},
		{clientEntry, spec.ClientP12},
	}
	entries := make([]string, len(files))
	for i, f := range files {
		entries[i] = f.name
	}
	manifest, err := manifestXML(uid, spec.Name, entries)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	for _, f := range append([]struct {
		name string
		data []byte
	}{{manifestEntry, manifest}}, files...) {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: now})
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.data); err != nil {
			return err
		}
	}
	return zw.Close()
}

func (s DataPackageSpec) withDefaults() (DataPackageSpec, error) {
	s.Host = strings.TrimSpace(s.Host)
	switch {
	case s.Host == "":
		return s, fmt.Errorf("%w: no host", ErrPackage)
	case strings.ContainsAny(s.Host, ": \t\r\n"):
		return s, fmt.Errorf("%w: host %q: TAK connect strings take a DNS name or IPv4 address", ErrPackage, s.Host)
	case s.Port < 0 || s.Port > 65535:
		return s, fmt.Errorf("%w: port %d", ErrPackage, s.Port)
	case len(s.ClientP12) == 0:
		return s, fmt.Errorf("%w: no client .p12", ErrPackage)
	case len(s.TruststoreP12) == 0:
		return s, fmt.Errorf("%w: no truststore .p12", ErrPackage)
	}
	if s.Port == 0 {
		s.Port = DefaultStreamPort
	}
	if s.ClientName == "" {
		s.ClientName = "client"
	}
	if err := checkFileName(s.ClientName); err != nil {
		return s, fmt.Errorf("%w: %w", ErrPackage, err)
	}
	if s.ClientName+".p12" == truststoreEntry {
		return s, fmt.Errorf("%w: client name %q collides with the truststore", ErrPackage, s.ClientName)
	}
	if s.Name == "" {
		s.Name = s.ClientName + "@" + s.Host
	}
	if s.Description == "" {
		s.Description = s.Name
	}
	if s.Password == "" {
		s.Password = DefaultP12Password
	}
	return s, nil
}

type xmlManifest struct {
	XMLName  xml.Name       `xml:"MissionPackageManifest"`
	Version  string         `xml:"version,attr"`
	Params   []xmlParameter `xml:"Configuration>Parameter"`
	Contents []xmlContent   `xml:"Contents>Content"`
}

type xmlParameter struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type xmlContent struct {
	Ignore   bool   `xml:"ignore,attr"`
	ZipEntry string `xml:"zipEntry,attr"`
}

func manifestXML(uid, name string, entries []string) ([]byte, error) {
	m := xmlManifest{
		Version: "2",
		Params: []xmlParameter{
			{Name: "uid", Value: uid},
			{Name: "name", Value: name},
			{Name: "onReceiveDelete", Value: "true"},
		},
	}
	for _, e := range entries {
		m.Contents = append(m.Contents, xmlContent{ZipEntry: e})
	}
	return marshalXML(m)
}

type xmlPreferences struct {
	XMLName xml.Name        `xml:"preferences"`
	Groups  []xmlPreference `xml:"preference"`
}

type xmlPreference struct {
	Version string     `xml:"version,attr"`
	Name    string     `xml:"name,attr"`
	Entries []xmlEntry `xml:"entry"`
}

// xmlEntry's field order matters: ATAK's ImportPrefSort looks for the
// literal text "<entry key", so key must be the first attribute.
type xmlEntry struct {
	Key   string `xml:"key,attr"`
	Class string `xml:"class,attr"`
	Value string `xml:",chardata"`
}

func str(k, v string) xmlEntry   { return xmlEntry{k, "class java.lang.String", v} }
func boolTrue(k string) xmlEntry { return xmlEntry{k, "class java.lang.Boolean", "true"} }
func integer(k string, v int) xmlEntry {
	return xmlEntry{k, "class java.lang.Integer", strconv.Itoa(v)}
}

func prefXML(s DataPackageSpec, clientEntry string) ([]byte, error) {
	p := xmlPreferences{Groups: []xmlPreference{
		{Version: "1", Name: "cot_streams", Entries: []xmlEntry{
			integer("count", 1),
			str("description0", s.Description),
			boolTrue("enabled0"),
			str("connectString0", ConnectString(s.Host, s.Port)),
		}},
		{Version: "1", Name: "com.atakmap.app_preferences", Entries: []xmlEntry{
			boolTrue("displayServerConnectionWidget"),
			str("caLocation", atakCertDir+truststoreEntry),
			str("caPassword", s.Password),
			str("certificateLocation", atakCertDir+clientEntry),
			str("clientPassword", s.Password),
		}},
	}}
	return marshalXML(p)
}

// ConnectString is a TAK TLS stream connect string, "host:port:ssl".
func ConnectString(host string, port int) string {
	return host + ":" + strconv.Itoa(port) + ":ssl"
}

func marshalXML(v any) ([]byte, error) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(append([]byte(xml.Header), out...), '\n'), nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
