// An outside verifier for dkeygen's transparency-log formats (src/tlog/), built on Go's own
// implementations: golang.org/x/mod/sumdb/note (signed notes, Ed25519 verifier keys) and
// golang.org/x/mod/sumdb/tlog (RFC 6962 trees: leaf hashes, stored hashes, roots, inclusion and
// consistency proofs), with crypto/ed25519 for cosignature/v1, which x/mod does not know (that
// check is written here from c2sp.org/tlog-cosignature).
//
// Reads one JSON object on stdin (see the Input type), writes one JSON object on stdout: for each
// item "ok" or the error Go's code gave. Run by test/interop/tlog-go.test.ts with GO111MODULE=off
// and GOPATH=/usr/share/gocode (Debian's golang-golang-x-mod-dev), so nothing is downloaded.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type Input struct {
	Notes        []NoteCase        `json:"notes"`
	Cosignatures []CosignatureCase `json:"cosignatures"`
	Leaves       []string          `json:"leaves"` // base64 leaf data, in order
	Roots        map[string]string `json:"roots"`  // tree size -> our root, base64
	Inclusion    []InclusionCase   `json:"inclusion"`
	Consistency  []ConsistencyCase `json:"consistency"`
}

type NoteCase struct {
	Note         string   `json:"note"`
	VerifierKeys []string `json:"verifierKeys"`
}

type CosignatureCase struct {
	Note      string `json:"note"`
	Name      string `json:"name"`
	PublicKey string `json:"publicKey"` // base64, 32 bytes
}

type InclusionCase struct {
	Index int64    `json:"index"`
	Size  int64    `json:"size"`
	Proof []string `json:"proof"`
}

type ConsistencyCase struct {
	Size1 int64    `json:"size1"`
	Size2 int64    `json:"size2"`
	Proof []string `json:"proof"`
}

type Output struct {
	Notes        []string          `json:"notes"`
	Cosignatures []string          `json:"cosignatures"`
	Roots        map[string]string `json:"roots"`
	Inclusion    []string          `json:"inclusion"`
	Consistency  []string          `json:"consistency"`
}

func main() {
	var in Input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := Output{Roots: map[string]string{}}
	for _, c := range in.Notes {
		out.Notes = append(out.Notes, result(openNote(c)))
	}
	for _, c := range in.Cosignatures {
		out.Cosignatures = append(out.Cosignatures, result(checkCosignature(c)))
	}

	// Go's own tree from the leaf data: sumdb/tlog's stored-hash layout, filled record by record.
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			hs[i] = stored[x]
		}
		return hs, nil
	})
	leafHashes := make([]tlog.Hash, len(in.Leaves))
	for n, leaf := range in.Leaves {
		data, err := base64.StdEncoding.DecodeString(leaf)
		check(err)
		leafHashes[n] = tlog.RecordHash(data)
		add, err := tlog.StoredHashes(int64(n), data, reader)
		check(err)
		stored = append(stored, add...)
	}
	treeHash := func(size int64) tlog.Hash {
		h, err := tlog.TreeHash(size, reader)
		check(err)
		return h
	}
	for size, ours := range in.Roots {
		var n int64
		_, err := fmt.Sscan(size, &n)
		check(err)
		if got := treeHash(n).String(); got != ours {
			out.Roots[size] = fmt.Sprintf("Go's root %s, ours %s", got, ours)
		} else {
			out.Roots[size] = "ok"
		}
	}
	for _, c := range in.Inclusion {
		err := tlog.CheckRecord(hashes(c.Proof), c.Size, treeHash(c.Size), c.Index, leafHashes[c.Index])
		if err == nil {
			// And Go's own proof is the same, hash for hash.
			p, perr := tlog.ProveRecord(c.Size, c.Index, reader)
			check(perr)
			if !sameHashes(p, hashes(c.Proof)) {
				err = errors.New("Go's proof differs")
			}
		}
		out.Inclusion = append(out.Inclusion, result(err))
	}
	for _, c := range in.Consistency {
		err := tlog.CheckTree(hashes(c.Proof), c.Size2, treeHash(c.Size2), c.Size1, treeHash(c.Size1))
		if err == nil {
			p, perr := tlog.ProveTree(c.Size2, c.Size1, reader)
			check(perr)
			if !sameHashes(p, hashes(c.Proof)) {
				err = errors.New("Go's proof differs")
			}
		}
		out.Consistency = append(out.Consistency, result(err))
	}
	check(json.NewEncoder(os.Stdout).Encode(out))
}

func openNote(c NoteCase) error {
	var vs []note.Verifier
	for _, k := range c.VerifierKeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return err
		}
		vs = append(vs, v)
	}
	n, err := note.Open([]byte(c.Note), note.VerifierList(vs...))
	if err != nil {
		return err
	}
	if len(n.Sigs) != len(c.VerifierKeys) {
		return fmt.Errorf("%d of %d keys verified", len(n.Sigs), len(c.VerifierKeys))
	}
	return nil
}

// checkCosignature finds the cosigner's line (key ID with type 0x04) and checks it as
// c2sp.org/tlog-cosignature says: 8-byte big-endian timestamp, then Ed25519 over
// "cosignature/v1\ntime <t>\n" followed by the note text.
func checkCosignature(c CosignatureCase) error {
	pub, err := base64.StdEncoding.DecodeString(c.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("bad public key")
	}
	h := sha256.Sum256(append(append([]byte(c.Name+"\n"), 0x04), pub...))
	keyID := binary.BigEndian.Uint32(h[:4])
	split := strings.LastIndex(c.Note, "\n\n")
	if split < 0 {
		return errors.New("no signatures")
	}
	text := c.Note[:split+1]
	for _, line := range strings.Split(strings.TrimSuffix(c.Note[split+2:], "\n"), "\n") {
		prefix := "— " + c.Name + " "
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		rest := line[len(prefix):]
		sig, err := base64.StdEncoding.DecodeString(rest)
		if err != nil || len(sig) != 4+8+64 || binary.BigEndian.Uint32(sig) != keyID {
			continue
		}
		t := binary.BigEndian.Uint64(sig[4:12])
		msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", t, text)
		if !ed25519.Verify(pub, []byte(msg), sig[12:]) {
			return errors.New("cosignature does not verify")
		}
		return nil
	}
	return errors.New("no cosignature by that key")
}

func hashes(b64 []string) []tlog.Hash {
	out := make([]tlog.Hash, len(b64))
	for i, s := range b64 {
		h, err := tlog.ParseHash(s)
		check(err)
		out[i] = h
	}
	return out
}

func sameHashes(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i][:], b[i][:]) {
			return false
		}
	}
	return true
}

func result(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
