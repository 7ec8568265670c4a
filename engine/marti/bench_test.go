package marti_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkTransfer moves a 64 MiB file through Marti (mutual TLS,
// multipart upload hashed and synced to disk; download by hash) and
// through the plainest net/http equivalents on the same TLS setup: a
// handler that copies the body to a file and syncs it, and http.FileServer.
// The ratio is the figure; absolute numbers depend on the machine.
//
//	go test ./engine/marti -run '^$' -bench Transfer -benchtime 3x
func BenchmarkTransfer(b *testing.B) {
	const size = 64 << 20
	w := newWorld(b, nil)
	client := w.http("alice")

	// The baseline server: same certificate, same client-certificate check.
	pair, err := tls.LoadX509KeyPair(w.pki.CertPath, w.pki.KeyPath)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(w.pki.CA.Cert)
	dir := b.TempDir()
	mux := http.NewServeMux()
	mux.Handle("GET /files/", http.StripPrefix("/files/", http.FileServer(http.Dir(dir))))
	mux.HandleFunc("POST /upload", func(rw http.ResponseWriter, r *http.Request) {
		f, err := os.CreateTemp(dir, "up-*")
		if err == nil {
			_, err = io.Copy(f, r.Body)
		}
		if err == nil {
			err = f.Sync()
		}
		if f != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
		if err != nil {
			http.Error(rw, err.Error(), 500)
		}
	})
	plain := httptest.NewUnstartedServer(mux)
	plain.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	plain.StartTLS()
	defer plain.Close()
	plainBase := "https://" + plain.Listener.Addr().String()

	upload := func(b *testing.B, url string, multi bool) string {
		gen := newPattern(size)
		pr, pw := io.Pipe()
		ctype := "application/octet-stream"
		if multi {
			mw := multipart.NewWriter(pw)
			ctype = mw.FormDataContentType()
			go func() {
				part, err := mw.CreateFormFile("assetfile", "big.zip")
				if err == nil {
					_, err = io.Copy(part, gen)
				}
				if err == nil {
					err = mw.Close()
				}
				pw.CloseWithError(err)
			}()
		} else {
			go func() { _, err := io.Copy(pw, gen); pw.CloseWithError(err) }()
		}
		code, body, _ := do(b, client, "POST", url, ctype, pr)
		if code != 200 {
			b.Fatalf("upload: %d %s", code, body)
		}
		return string(body)
	}
	download := func(b *testing.B, url string) {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("download: %d bytes, %v", n, err)
		}
	}

	var link string
	b.Run("marti_upload", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			link = upload(b, w.base+"/Marti/sync/missionupload?filename=big.zip", true)
		}
	})
	b.Run("plain_upload", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			upload(b, plainBase+"/upload", false)
		}
	})
	f, err := os.Create(filepath.Join(dir, "big.zip"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, newPattern(size)); err != nil {
		b.Fatal(err)
	}
	_ = f.Close()
	b.Run("marti_download", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			download(b, link)
		}
	})
	b.Run("fileserver_download", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			download(b, plainBase+"/files/big.zip")
		}
	})
}
