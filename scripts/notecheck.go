// The signed-note differential's oracle: golang.org/x/mod/sumdb/note opens each file with the one verifier key
// given and prints "ok" or "err: reason" per file, in order.
//
// Usage: go run notecheck.go VKEY FILE...
package main

import (
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: notecheck VKEY FILE...")
		os.Exit(2)
	}
	v, err := note.NewVerifier(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifier key:", err)
		os.Exit(2)
	}
	for _, path := range os.Args[2:] {
		msg, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
			fmt.Printf("err: %v\n", err)
		} else {
			fmt.Println("ok")
		}
	}
}
