package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sextantd/sextant/core/auth"
)

// maxPasswordBytes is the longest password bcrypt takes.
const maxPasswordBytes = 72

// hashPassword reads a password, one line, from stdin and prints its bcrypt
// hash, for a user's password_hash in auth.users.
func hashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "sextant hash-password: unexpected argument %q: the password is read from stdin\n", args[0])
		return 2
	}
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "password (echoed): ")
		}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "sextant hash-password: reading stdin: %v\n", err)
		return 1
	}
	password := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	switch {
	case password == "":
		fmt.Fprintln(stderr, "sextant hash-password: no password on stdin")
		return 2
	case len(password) > maxPasswordBytes:
		fmt.Fprintf(stderr, "sextant hash-password: the password has %d bytes; bcrypt takes at most %d\n", len(password), maxPasswordBytes)
		return 2
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		fmt.Fprintf(stderr, "sextant hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, hash)
	return 0
}
