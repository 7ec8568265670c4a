package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"cotd/engine/auth"
)

const usersUsage = `usage:
  cotd users add     --file F --name N [--password-stdin] [--groups a,b] [--in a,b] [--out a,b]
  cotd users passwd  --file F --name N [--password-stdin]
  cotd users del     --file F --name N
  cotd users disable --file F --name N [--config FILE]
  cotd users enable  --file F --name N
  cotd users list    --file F
  cotd users hash    [--password-stdin]
  cotd users token   --file F --name N --host H [--ttl 24h] [--qr FILE] [--state FILE]
N is the certificate CN or the <auth> user name. --groups are both
directions, --in publish only, --out receive only; a user with no group is
__ANON__. add without --password-stdin makes a certificate-only user.
passwd and hash always read the password from the first line of stdin (on a
terminal: a prompt, without echo); hash
prints a bcrypt hash for admin.basic_password_hash. add creates F if needed.
disable also revokes N's enrolled certificates (enroll.revoke_on_disable,
with the CA and CRL of --config, default the embedded defaults). token
prints a one-time enrollment token and its QR payload and writes the QR
code as a PNG.
`

// usersFlags holds every users flag; each subcommand registers only its own.
type usersFlags struct {
	file, name, groups, in, out string
	config                      string // disable: where the CA and CRL are
	passwordStdin               bool
}

// usersCmd implements `cotd users`: flags in, auth calls, one line out.
// Exit codes: 0 ok, 1 failure, 2 usage.
func usersCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usersUsage)
		return 2
	}
	sub := args[0]
	switch sub {
	case "add", "passwd", "del", "disable", "enable", "list", "hash":
	case "token":
		return usersToken(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usersUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "cotd users: unknown subcommand %q\n%s", sub, usersUsage)
		return 2
	}
	f, code := parseUsersFlags(sub, args[1:], stdout, stderr)
	if f == nil {
		return code
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}

	var msg string
	var err error
	switch sub {
	case "add":
		msg, err = usersAdd(f, stdin)
	case "passwd":
		msg, err = usersPasswd(f, stdin)
	case "del":
		msg, err = usersEdit(f, "deleted", func(users []auth.User, i int) []auth.User { return slices.Delete(users, i, i+1) })
	case "disable", "enable":
		on := sub == "disable"
		msg, err = usersEdit(f, sub+"d", func(users []auth.User, i int) []auth.User { users[i].Disabled = on; return users })
		if err == nil && on {
			var revoked string
			if revoked, err = revokeOnDisable(f.config, f.file, f.name); revoked != "" {
				msg += "\n" + revoked
			}
		}
	case "list":
		err = usersList(f, stdout)
	case "hash":
		var pw, h string
		if pw, err = readPasswordLine(stdin); err == nil {
			if h, err = auth.HashPassword(pw); err == nil {
				fmt.Fprintln(stdout, h)
			}
		}
	}
	if err != nil {
		m := err.Error()
		if f.file != "" && !strings.Contains(m, f.file) {
			m = f.file + ": " + m
		}
		fmt.Fprintf(stderr, "cotd users %s: %s\n", sub, m)
		return 1
	}
	if msg != "" {
		fmt.Fprintln(stdout, msg)
	}
	return 0
}

// parseUsersFlags returns the flags, or nil and the exit code when parsing
// ended the command (an error, or -h).
func parseUsersFlags(sub string, args []string, stdout, stderr io.Writer) (*usersFlags, int) {
	f := &usersFlags{}
	fs := flag.NewFlagSet("cotd users "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if sub != "hash" {
		fs.StringVar(&f.file, "file", "", "users file (TOML; required)")
	}
	switch sub {
	case "add", "passwd", "del", "disable", "enable":
		fs.StringVar(&f.name, "name", "", "user name: certificate CN or <auth> user (required)")
	}
	switch sub {
	case "add", "passwd", "hash":
		fs.BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from the first line of stdin")
	}
	if sub == "disable" {
		fs.StringVar(&f.config, "config", "", "configuration file: CA, CRL and enrollment state (default: the embedded defaults)")
	}
	if sub == "add" {
		fs.StringVar(&f.groups, "groups", "", "comma-separated groups, both directions")
		fs.StringVar(&f.in, "in", "", "comma-separated groups the user publishes into")
		fs.StringVar(&f.out, "out", "", "comma-separated groups the user receives from")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usersUsage)
			return nil, 0
		}
		return nil, 2 // package flag printed the error and the flags
	}
	var problem string
	switch {
	case fs.NArg() > 0:
		problem = fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case sub != "hash" && f.file == "":
		problem = "--file is required"
	case sub != "hash" && sub != "list" && f.name == "":
		problem = "--name is required"
	}
	if problem != "" {
		fmt.Fprintf(stderr, "cotd users %s: %s\n%s", sub, problem, usersUsage)
		return nil, 2
	}
	return f, 0
}

func usersAdd(f *usersFlags, stdin io.Reader) (string, error) {
	u := auth.User{
		Name:      f.name,
		Groups:    splitGroups(f.groups),
		GroupsIn:  splitGroups(f.in),
		GroupsOut: splitGroups(f.out),
	}
	if f.passwordStdin {
		h, err := hashFromStdin(stdin)
		if err != nil {
			return "", err
		}
		u.PasswordHash = h
	}
	err := auth.Update(f.file, func(users []auth.User) ([]auth.User, error) {
		if slices.ContainsFunc(users, func(x auth.User) bool { return x.Name == u.Name }) {
			return nil, fmt.Errorf("user %q already exists", u.Name)
		}
		return append(users, u), nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: added %s (in: %s; out: %s; password: %s)",
		f.file, u.Name, groupList(u.In()), groupList(u.Out()), yesNo(u.PasswordHash != "")), nil
}

func usersPasswd(f *usersFlags, stdin io.Reader) (string, error) {
	// Hash before taking the file's lock: bcrypt is the slow part.
	h, err := hashFromStdin(stdin)
	if err != nil {
		return "", err
	}
	return usersEdit(f, "password changed", func(users []auth.User, i int) []auth.User {
		users[i].PasswordHash = h
		return users
	})
}

// usersEdit applies edit to the user named by --name under the file lock;
// a missing user is an error.
func usersEdit(f *usersFlags, done string, edit func(users []auth.User, i int) []auth.User) (string, error) {
	err := auth.Update(f.file, func(users []auth.User) ([]auth.User, error) {
		i := slices.IndexFunc(users, func(u auth.User) bool { return u.Name == f.name })
		if i < 0 {
			return nil, fmt.Errorf("no user %q", f.name)
		}
		return edit(users, i), nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: %s %s", f.file, f.name, done), nil
}

func usersList(f *usersFlags, stdout io.Writer) error {
	d, err := auth.Load(f.file)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIN\tOUT\tPASSWORD\tDISABLED")
	for _, u := range d.Users() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n",
			u.Name, groupList(u.In()), groupList(u.Out()), yesNo(u.PasswordHash != ""), yesNo(u.Disabled))
	}
	return tw.Flush()
}

func hashFromStdin(stdin io.Reader) (string, error) {
	pw, err := readPasswordLine(stdin)
	if err != nil {
		return "", err
	}
	return auth.HashPassword(pw)
}

// maxPasswordLine bounds what is read from stdin; a longer line is cut
// here and then refused by auth, which takes at most bcrypt's 72 bytes.
const maxPasswordLine = 1024

// readPasswordLine returns the first line of r without its line ending.
// Other white space is kept: it may be part of the password. When r is a
// terminal, it prompts on it and reads with echo off, so that the password
// is neither shown nor left in the terminal's scrollback.
func readPasswordLine(r io.Reader) (string, error) {
	if f, ok := r.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		_, _ = fmt.Fprint(f, "Password: ")
		pw, err := term.ReadPassword(int(f.Fd()))
		_, _ = fmt.Fprintln(f)
		switch {
		case err != nil:
			return "", fmt.Errorf("reading the password from the terminal: %w", err)
		case len(pw) == 0:
			return "", errors.New("no password given")
		case len(pw) > maxPasswordLine:
			pw = pw[:maxPasswordLine]
		}
		return string(pw), nil
	}
	line, err := bufio.NewReader(io.LimitReader(r, maxPasswordLine)).ReadString('\n')
	switch {
	case errors.Is(err, io.EOF) && line == "":
		return "", errors.New("no password on stdin (its first line is the password)")
	case err != nil && !errors.Is(err, io.EOF):
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

func splitGroups(s string) []string {
	var groups []string
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}
	return groups
}

func groupList(groups []string) string {
	if len(groups) == 0 {
		return "-"
	}
	return strings.Join(groups, ",")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
