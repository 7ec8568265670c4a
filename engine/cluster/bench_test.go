package cluster_test

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	et "cotd/engine/enginetest"
)

// BenchmarkDelivery is the cost of one delivery from a client of one node
// to a client of another (cross), against both clients on one node
// (local): a burst of markers, timed until the last is read.
func BenchmarkDelivery(b *testing.B) {
	for _, mode := range []string{"local", "cross"} {
		b.Run(mode, func(b *testing.B) {
			ns := startClusterB(b)
			to := ns[1]
			if mode == "local" {
				to = ns[0]
			}
			send := dialRaw(b, ns[0].h.TCPAddr())
			recv := dialRaw(b, to.h.TCPAddr())
			et.Eventually(b, "both joined", func() bool {
				return len(ns[0].dir.Clients()) == 2 || len(ns[1].dir.Clients()) == 2
			})
			// Warm up: the route carries the group once the receiver's node
			// subscribed.
			marker := []byte(et.Marker("bench-marker"))
			for {
				_, _ = send.Write(marker)
				if readEvents(recv, 1, time.Second) == 1 {
					break
				}
			}
			drain(recv)
			var burst bytes.Buffer
			for range b.N {
				burst.Write(marker)
			}
			b.ResetTimer()
			go func() { _, _ = send.Write(burst.Bytes()) }()
			got := readEvents(recv, b.N, et.Wait)
			b.StopTimer()
			if got < b.N*99/100 {
				b.Fatalf("received %d of %d", got, b.N)
			}
		})
	}
}

func startClusterB(b *testing.B) []*node {
	var nodes []*node
	for i := range 2 {
		nodes = append(nodes, startNodeTB(b, i, nodes))
	}
	et.Eventually(b, "mesh", func() bool { return len(nodes[0].n.Peers()) == 1 && len(nodes[1].n.Peers()) == 1 })
	return nodes
}

func dialRaw(b *testing.B, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// readEvents reads until n events came or nothing came for idle.
func readEvents(c net.Conn, n int, idle time.Duration) int {
	buf := make([]byte, 256<<10)
	got := 0
	var tail string
	for got < n {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		k, err := c.Read(buf)
		if k > 0 {
			s := tail + string(buf[:k])
			got += strings.Count(s, "</event>")
			if i := strings.LastIndex(s, "</event>"); i >= 0 {
				s = s[i+len("</event>"):]
			}
			if len(s) > 16 {
				s = s[len(s)-16:]
			}
			tail = s
		}
		if err != nil {
			break
		}
	}
	return got
}

func drain(c net.Conn) { readEvents(c, 1<<30, 200*time.Millisecond) }
