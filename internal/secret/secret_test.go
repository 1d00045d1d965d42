package secret

import (
	"bytes"
	"crypto/rand"
	"math/big"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	k, err := NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal([]byte("hunter2-password"), []byte("payments/db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("plaintext in ciphertext")
	}
	if v, err := k.Open(sealed, []byte("payments/db")); err != nil || string(v) != "hunter2-password" {
		t.Fatalf("open: %q %v", v, err)
	}
	if _, err := k.Open(sealed, []byte("payments/other")); err != ErrOpen {
		t.Fatalf("value moved to another name opened: %v", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := k.Open(bad, []byte("payments/db")); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	other := make([]byte, KeySize)
	rand.Read(other)
	k2, _ := NewKeyring(other)
	if _, err := k2.Open(sealed, []byte("payments/db")); err != ErrOpen {
		t.Fatal("opened under another master key")
	}
	again, _ := k.Seal([]byte("hunter2-password"), []byte("payments/db"))
	if bytes.Equal(again, sealed) {
		t.Fatal("sealing is deterministic")
	}
}

func TestParseKey(t *testing.T) {
	if _, err := ParseKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKey(strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKey("short"); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestRedactorSplitWrites(t *testing.T) {
	secrets := [][]byte{[]byte("s3cr3t-value"), []byte("tok_ABC123"), []byte("s3cr3t")}
	text := "start s3cr3t-value middle tok_ABC123 tok_ABC12 s3cr3 s3cr3t end s3cr3t-value"
	want := "start [REDACTED] middle [REDACTED] tok_ABC12 s3cr3 [REDACTED] end [REDACTED]"
	// Every way of cutting the text into two or three writes.
	for i := 0; i <= len(text); i++ {
		for j := i; j <= len(text); j += 3 {
			var out bytes.Buffer
			r := NewRedactor(&out, secrets)
			r.Write([]byte(text[:i]))
			r.Write([]byte(text[i:j]))
			r.Write([]byte(text[j:]))
			r.Flush()
			if out.String() != want {
				t.Fatalf("cut at %d,%d: %q", i, j, out.String())
			}
		}
	}
	// Random chunking, byte by byte included.
	for n := 0; n < 200; n++ {
		var out bytes.Buffer
		r := NewRedactor(&out, secrets)
		rest := text
		for rest != "" {
			c, _ := rand.Int(rand.Reader, big.NewInt(5))
			k := min(len(rest), int(c.Int64())+1)
			r.Write([]byte(rest[:k]))
			rest = rest[k:]
		}
		r.Flush()
		if out.String() != want {
			t.Fatalf("random chunks: %q", out.String())
		}
	}
}

func FuzzRedactor(f *testing.F) {
	f.Add([]byte("abcsecretdef"), []byte("secret"), uint8(3))
	f.Fuzz(func(t *testing.T, data, sec []byte, cut uint8) {
		if len(sec) < minSecretLen {
			return
		}
		var out bytes.Buffer
		r := NewRedactor(&out, [][]byte{sec})
		c := int(cut) % (len(data) + 1)
		r.Write(data[:c])
		r.Write(data[c:])
		r.Flush()
		if bytes.Contains(out.Bytes(), sec) && !bytes.Contains([]byte(Mask), sec) {
			// A secret may re-form across a mask boundary only if the mask
			// itself contributes to it.
			if !bytes.Contains(bytes.ReplaceAll(out.Bytes(), []byte(Mask), nil), sec) {
				return
			}
			t.Fatalf("secret %q survives in %q", sec, out.Bytes())
		}
	})
}
