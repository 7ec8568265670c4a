package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cotd/configs"
	"cotd/tlsstate/pki"
)

const certsUsage = `usage:
  cotd certs ca      --dir DIR [--cn NAME] [--rsa] [--days N]
  cotd certs server  --dir DIR --host H[,H...] [--cn NAME] [--rsa] [--days N] [--force]
  cotd certs client  --dir DIR --name USER [--password P] [--rsa] [--days N] [--force]
                     [--package --server-host HOST [--server-port 8089]]
  cotd certs node    --dir DIR --name NODE --host H[,H...] [--rsa] [--days N] [--force]
server, client and node use DIR/ca.pem and DIR/ca.key. node writes DIR/nodes/NODE.pem
and .key, a cluster node's route certificate (serverAuth and clientAuth). They refuse
to replace an existing certificate or key unless --force is given; a CA is never replaced.
`

// errFlagPrinted: package flag has already printed the error and the
// defaults.
var errFlagPrinted = errors.New("flag error")

// certsFlags holds every certs flag; each subcommand registers only its own.
type certsFlags struct {
	dir, cn, hosts, name, password, serverHost string
	rsa, pkg, force                            bool
	days, serverPort                           int
}

// certsCmd implements `cotd certs`: flags in, pki calls, paths out.
func certsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, certsUsage)
		return 2
	}
	sub := args[0]
	switch sub {
	case "ca", "server", "client", "node":
	case "enroll-package", "revoke", "crl":
		return certsEnrollCmd(sub, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, certsUsage+enrollUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "cotd certs: unknown subcommand %q\n%s", sub, certsUsage)
		return 2
	}
	f, err := parseCertsFlags(sub, args[1:], stderr)
	if err != nil {
		if !errors.Is(err, errFlagPrinted) {
			fmt.Fprintf(stderr, "cotd certs %s: %v\n%s", sub, err, certsUsage)
		}
		return 2
	}
	kt := pki.KeyECDSAP256
	if f.rsa {
		kt = pki.KeyRSA2048
	}
	validFor := time.Duration(f.days) * 24 * time.Hour // zero: the pki default
	if !f.force {
		if existing := existingOutputs(sub, f); existing != "" {
			fmt.Fprintf(stderr, "cotd certs %s: %s already exists: pass --force to replace it (the old key is lost)\n", sub, existing)
			return 1
		}
	}

	var written []string
	switch sub {
	case "ca":
		_, err = pki.CreateCA(f.dir, f.cn, kt, validFor)
		if err == nil {
			c, k := pki.Paths(f.dir, pki.CAName)
			written = []string{c, k}
		}
	case "server":
		written, err = issueServer(f, kt, validFor)
	case "client":
		written, err = issueClient(f, kt, validFor)
	case "node":
		written, err = issueNode(f, kt, validFor)
	}
	switch {
	case errors.Is(err, pki.ErrNoCA):
		fmt.Fprintf(stderr, "cotd certs %s: no CA in %s: run `cotd certs ca --dir %s` first\n", sub, f.dir, f.dir)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "cotd certs %s: %v\n", sub, err)
		return 1
	}
	for _, p := range written {
		fmt.Fprintln(stdout, "wrote", p)
	}
	return 0
}

func parseCertsFlags(sub string, args []string, stderr io.Writer) (*certsFlags, error) {
	f := &certsFlags{}
	fs := flag.NewFlagSet("cotd certs "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.dir, "dir", "", "certificate directory (required)")
	fs.BoolVar(&f.rsa, "rsa", false, "RSA-2048 keys instead of ECDSA P-256")
	fs.IntVar(&f.days, "days", 0, "validity in days (0: 3650 for a CA, 825 otherwise)")
	switch sub {
	case "ca":
		fs.StringVar(&f.cn, "cn", "cotd CA", "CA common name")
	case "server":
		fs.BoolVar(&f.force, "force", false, "replace an existing server certificate and key")
		fs.StringVar(&f.hosts, "host", "", "comma-separated DNS names and IP addresses (required)")
		fs.StringVar(&f.cn, "cn", "", "common name (default: the first host)")
	case "client":
		fs.BoolVar(&f.force, "force", false, "replace an existing certificate, key, .p12 and package of this user")
		fs.StringVar(&f.name, "name", "", "TAK user name: the certificate CN and the file names (required)")
		fs.StringVar(&f.password, "password", pki.DefaultP12Password, ".p12 password")
		fs.BoolVar(&f.pkg, "package", false, "also write USER.zip, an ATAK connection data package")
		fs.StringVar(&f.serverHost, "server-host", "", "server address the package connects to")
		fs.IntVar(&f.serverPort, "server-port", pki.DefaultStreamPort, "TLS stream port the package connects to")
	case "node":
		fs.BoolVar(&f.force, "force", false, "replace an existing certificate and key of this node")
		fs.StringVar(&f.name, "name", "", "cluster.node name: the certificate CN and the file names (required)")
		fs.StringVar(&f.hosts, "host", "", "comma-separated DNS names and IP addresses other nodes reach this one by (required)")
	}
	if err := fs.Parse(args); err != nil {
		return nil, errFlagPrinted
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case f.dir == "":
		return nil, errors.New("--dir is required")
	case f.days < 0:
		return nil, errors.New("--days must not be negative")
	case (sub == "server" || sub == "node") && len(splitHosts(f.hosts)) == 0:
		return nil, errors.New("--host is required")
	case (sub == "client" || sub == "node") && f.name == "":
		return nil, errors.New("--name is required")
	case sub == "node" && !configs.ValidNodeName(f.name): // also keeps it a plain file name
		return nil, fmt.Errorf("--name %q: use letters, digits, '-' and '_' only, as in cluster.node", f.name)
	case f.pkg && f.serverHost == "":
		return nil, errors.New("--package needs --server-host")
	case !f.pkg && f.serverHost != "":
		return nil, errors.New("--server-host only applies with --package")
	case f.serverPort < 0 || f.serverPort > 65535:
		return nil, errors.New("--server-port out of range")
	}
	return f, nil
}

func issueServer(f *certsFlags, kt pki.KeyType, validFor time.Duration) ([]string, error) {
	ca, err := pki.LoadCA(f.dir)
	if err != nil {
		return nil, err
	}
	srv, err := ca.IssueServer(f.cn, splitHosts(f.hosts), kt, validFor)
	if err != nil {
		return nil, err
	}
	c, k, err := pki.Save(f.dir, pki.ServerName, srv)
	return []string{c, k}, err
}

// nodesDir is where node certificates go, under the CA's directory: apart
// from the users' NAME.pem files, so that a node and a user (or the
// server) of one name do not overwrite each other.
const nodesDir = "nodes"

func issueNode(f *certsFlags, kt pki.KeyType, validFor time.Duration) ([]string, error) {
	ca, err := pki.LoadCA(f.dir)
	if err != nil {
		return nil, err
	}
	node, err := ca.IssueNode(f.name, splitHosts(f.hosts), kt, validFor)
	if err != nil {
		return nil, err
	}
	c, k, err := pki.Save(filepath.Join(f.dir, nodesDir), f.name, node)
	return []string{c, k}, err
}

func issueClient(f *certsFlags, kt pki.KeyType, validFor time.Duration) ([]string, error) {
	ca, err := pki.LoadCA(f.dir)
	if err != nil {
		return nil, err
	}
	client, err := ca.IssueClient(f.name, kt, validFor)
	if err != nil {
		return nil, err
	}
	files, err := pki.SaveClient(f.dir, f.name, client, ca, pki.ClientOptions{
		Password: f.password, PackageHost: f.serverHost, PackagePort: f.serverPort,
	})
	if err != nil {
		return nil, err
	}
	written := []string{files.Cert, files.Key, files.P12}
	if files.Package != "" {
		written = append(written, files.Package)
	}
	return written, nil
}

func splitHosts(s string) []string {
	var hosts []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// existingOutputs returns the first file that issuing would replace, or "".
// A client's certificate in use on a device, or the server's key, is not
// something to lose to a repeated command.
func existingOutputs(sub string, f *certsFlags) string {
	var paths []string
	switch sub {
	case "server":
		c, k := pki.Paths(f.dir, pki.ServerName)
		paths = []string{c, k}
	case "client":
		c, k := pki.Paths(f.dir, f.name)
		paths = []string{c, k, filepath.Join(f.dir, f.name+".p12")}
		if f.pkg {
			paths = append(paths, filepath.Join(f.dir, f.name+".zip"))
		}
	case "node":
		c, k := pki.Paths(filepath.Join(f.dir, nodesDir), f.name)
		paths = []string{c, k}
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return p
		}
	}
	return ""
}
