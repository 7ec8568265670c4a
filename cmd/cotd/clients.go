package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"cotd/engine/admin"
)

// passwordEnv keeps the admin password out of ps and shell history.
const passwordEnv = "COTD_ADMIN_PASSWORD"

// clientsCmd prints the connected clients, read from a running server's
// admin API.
func clientsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("clients", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "http://127.0.0.1:8088", "admin API base URL ([admin] addr)")
	user := fs.String("user", "", "basic auth user ([admin] basic_user)")
	password := fs.String("password", "", "basic auth password (default $"+passwordEnv+")")
	caFile := fs.String("ca", "", "CA bundle to verify an https admin listener with")
	certFile := fs.String("cert", "", "client certificate (PEM) for an admin listener with client_ca")
	keyFile := fs.String("key", "", "key of --cert (PEM)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // -h asked for the usage, which flag printed
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cotd clients: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *password == "" {
		*password = os.Getenv(passwordEnv)
	}
	client, err := adminClient(*caFile, *certFile, *keyFile)
	if err != nil {
		fmt.Fprintln(stderr, "cotd clients:", err)
		return 1
	}
	base := strings.TrimRight(*admin, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	cs, err := fetchClients(client, base+"/api/clients", *user, *password)
	if err != nil {
		fmt.Fprintln(stderr, "cotd clients:", err)
		return 1
	}
	if err := writeClientsTable(stdout, cs, time.Now()); err != nil {
		fmt.Fprintln(stderr, "cotd clients:", err)
		return 1
	}
	return 0
}

// adminClient is an HTTP client for the admin API, with a CA to trust and a
// client certificate when those are given.
func adminClient(caFile, certFile, keyFile string) (*http.Client, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	if caFile == "" && certFile == "" && keyFile == "" {
		return c, nil
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--cert and --key go together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	c.Transport = &http.Transport{TLSClientConfig: cfg}
	return c, nil
}

// fetchClients GETs the client list. Its errors say what to do about them.
func fetchClients(c *http.Client, url, user, password string) ([]admin.ClientInfo, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("bad --admin URL: %w", err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API unreachable: %w (is cotd running, and is --admin its [admin] addr?)", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("%s: 401 Unauthorized: pass --user and --password (or $%s)", url, passwordEnv)
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	var cs []admin.ClientInfo
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		return nil, fmt.Errorf("%s: bad response: %w", url, err)
	}
	return cs, nil
}

// writeClientsTable prints one aligned row per connection. SINCE is when it
// connected, in now's time zone; LAST SEEN is how long ago it sent its
// last routed document.
func writeClientsTable(w io.Writer, cs []admin.ClientInfo, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUID\tCALLSIGN\tCN\tREMOTE\tLISTENER\tPROTOCOL\tSTATE\tSINCE\tLAST SEEN\tQUEUED")
	for _, c := range cs {
		since, seen := "-", "-"
		if !c.Since.IsZero() {
			since = c.Since.In(now.Location()).Format(time.RFC3339)
		}
		if !c.LastSeen.IsZero() {
			seen = max(now.Sub(c.LastSeen), 0).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			c.ID, cell(c.UID), cell(c.Callsign), cell(c.CN), cell(c.Remote), cell(c.Listener),
			cell(c.Protocol), cell(c.State), since, seen, strconv.FormatInt(c.QueuedBytes, 10))
	}
	return tw.Flush()
}

// cell makes a value safe for one table cell: uids and callsigns come from
// clients, and a tab would break the columns, an escape sequence reach the
// operator's terminal.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
