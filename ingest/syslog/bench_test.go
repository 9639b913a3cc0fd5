package syslog

import (
	"context"
	"net"
	"testing"
	"time"
)

var benchMessages = []struct{ name, msg string }{
	{"rfc3164-nginx", "<190>Nov 23 10:00:00 web1 nginx: " + nginxLine},
	{"rfc5424-sd", `<165>1 2026-11-23T10:00:00.003+01:00 web1.example.com nginx 4242 access [meta@32473 req="7" path="/a\"b"] ` + nginxLine},
}

// BenchmarkParse measures Parse, which allocates the header strings, and
// the interning parser the server uses, which should not allocate.
func BenchmarkParse(b *testing.B) {
	now := time.Now()
	for _, bm := range benchMessages {
		msg := []byte(bm.msg)
		b.Run(bm.name+"/Parse", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := Parse(msg, now); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bm.name+"/interned", func(b *testing.B) {
			p := parser{strs: make(map[string]string)}
			var m Message
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if r, _ := p.parse(msg, now, &m); r != rOK {
					b.Fatal(reasonNames[r])
				}
			}
		})
	}
}

// BenchmarkUDP sends nginx datagrams one at a time over loopback and waits
// for each to be handled: the allocations reported are those of the whole
// path, client included.
func BenchmarkUDP(b *testing.B) {
	handled := make(chan struct{})
	s, err := New(Config{UDP: "127.0.0.1:0"}, func(*Message) { handled <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-s.Ready()
	addr, _ := s.Addrs()
	c, err := net.Dial("udp", addr.String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := []byte(benchMessages[0].msg)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		<-handled
	}
}
