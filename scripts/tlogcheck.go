// Independent check of Tripline's audit checkpoints and proofs with Go's golang.org/x/mod (sumdb/note verifies the
// signed note, sumdb/tlog the RFC 6962 proofs). The checkpoint body is parsed here per C2SP tlog-checkpoint
// (tlog.ParseTree accepts only the Go checksum database's origin).
//
// Usage: go run tlogcheck.go VKEY NOTEFILE PROOFS.json
// PROOFS.json: {"inclusion": [{"index": i, "leaf": b64, "proof": [b64...]}], "consistency": [{"size": m, "root": b64, "proof": [...]}]}
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func hash(s string) tlog.Hash {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		fail("bad hash %q", s)
	}
	var h tlog.Hash
	copy(h[:], b)
	return h
}

func fail(f string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogcheck: "+f+"\n", a...)
	os.Exit(1)
}

func main() {
	v, err := note.NewVerifier(os.Args[1])
	if err != nil {
		fail("verifier key: %v", err)
	}
	msg, _ := os.ReadFile(os.Args[2])
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("note: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		fail("checkpoint: too few lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	root := hash(lines[2])
	var proofs struct {
		Inclusion []struct {
			Index int64
			Leaf  string
			Proof []string
		}
		Consistency []struct {
			Size  int64
			Root  string
			Proof []string
		}
	}
	data, _ := os.ReadFile(os.Args[3])
	if err := json.Unmarshal(data, &proofs); err != nil {
		fail("proofs: %v", err)
	}
	for _, p := range proofs.Inclusion {
		var rp tlog.RecordProof
		for _, h := range p.Proof {
			rp = append(rp, hash(h))
		}
		if err := tlog.CheckRecord(rp, size, root, p.Index, hash(p.Leaf)); err != nil {
			fail("inclusion of %d in %d: %v", p.Index, size, err)
		}
	}
	for _, p := range proofs.Consistency {
		var tp tlog.TreeProof
		for _, h := range p.Proof {
			tp = append(tp, hash(h))
		}
		if err := tlog.CheckTree(tp, size, root, p.Size, hash(p.Root)); err != nil {
			fail("consistency %d -> %d: %v", p.Size, size, err)
		}
	}
	fmt.Printf("ok %s %d %d %d\n", lines[0], size, len(proofs.Inclusion), len(proofs.Consistency))
}
