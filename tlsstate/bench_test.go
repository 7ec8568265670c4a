package tlsstate

import (
	"crypto/tls"
	"io"
	"strconv"
	"testing"
)

// BenchmarkHandshake compares full TLS 1.3 mTLS handshakes through tlsstate
// (loop goroutine, handshake goroutine, Feed, Out queue) with a bare
// crypto/tls pair, both over the same in-memory transport. Client and
// server run in this process, so the time is both sides' CPU.
func BenchmarkHandshake(b *testing.B) {
	p := pkiOnce()
	for _, key := range []string{"ECDSA", "RSA"} {
		scfg := serverConfig(map[string]string{"ECDSA": "ecdsa", "RSA": "rsa"}[key], tls.VersionTLS13)
		ccfg := clientConfig(&p.client, tls.VersionTLS13)
		b.Run(key+"/tlsstate", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a, s := memPair()
				l := startLoop(b, s, scfg, loopOpts{manual: true})
				if err := tls.Client(a, ccfg).Handshake(); err != nil {
					b.Fatal(err)
				}
				l.waitEstablished(b)
				l.stop()
				a.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
		b.Run(key+"/stdlib", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a, s := memPair()
				srv := tls.Server(s, scfg)
				done := make(chan error, 1)
				go func() { done <- srv.Handshake() }()
				if err := tls.Client(a, ccfg).Handshake(); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				a.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}

// BenchmarkEstablishedRead measures decrypting application records: through
// Feed (ciphertext handed over in 64 KiB socket-sized reads, plaintext
// appended to a reused dst) and through a bare tls.Conn.Read on an
// in-memory conn. One op is one record of the given size. The client
// encrypts between timed sections, about 1 MiB at a time.
func BenchmarkEstablishedRead(b *testing.B) {
	p := pkiOnce()
	scfg := serverConfig("ecdsa", tls.VersionTLS13)
	ccfg := clientConfig(&p.client, tls.VersionTLS13)
	ccfg.DynamicRecordSizingDisabled = true
	for _, size := range []int{256, 1024, 16384} {
		msg := make([]byte, size)
		batch := max(1, (1<<20)/size)
		b.Run(strconv.Itoa(size)+"/tlsstate", func(b *testing.B) {
			l, tc, cc := establishedMem(b, scfg, ccfg, false)
			capture := cc.startCapture()
			dst := make([]byte, 0, 64<<10)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				b.StopTimer()
				capture.Reset()
				for range min(batch, b.N-i) {
					tc.Write(msg)
				}
				ct := capture.Bytes()
				b.StartTimer()
				for len(ct) > 0 {
					n := min(len(ct), 64<<10)
					var err error
					dst, err = l.conn.Feed(ct[:n], dst[:0])
					if err != nil {
						b.Fatal(err)
					}
					ct = ct[n:]
				}
			}
		})
		b.Run(strconv.Itoa(size)+"/stdlib", func(b *testing.B) {
			a, s := memPair()
			defer a.Close()
			srv := tls.Server(s, scfg)
			done := make(chan error, 1)
			go func() { done <- srv.Handshake() }()
			cli := tls.Client(a, ccfg)
			if err := cli.Handshake(); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				k := min(batch, b.N-i)
				b.StopTimer()
				for range k {
					cli.Write(msg)
				}
				b.StartTimer()
				for left := k * size; left > 0; {
					n, err := io.ReadFull(srv, buf[:min(left, len(buf))])
					if err != nil {
						b.Fatal(err)
					}
					left -= n
				}
			}
		})
	}
}
