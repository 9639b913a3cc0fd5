package loggen

import (
	"bufio"
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// Out-of-order lines: the share of lines written late, and how late.
const (
	lateShare = 0.001
	lateMin   = int64(200 * time.Millisecond)
	lateMax   = int64(2 * time.Second)
)

// actorShare is the most of the log the planned actors may take; actors
// that do not fit are dropped.
const actorShare = 0.4

// rec is one request as written to the log.
type rec struct {
	at     int64 // event time, ns after Config.Start
	client int32 // index into gen.clients
	status int16
	bytes  int32
	method string
	target string // request target as sent: path and query
	proto  string // "HTTP/1.1", "HTTP/2.0"
	ref    string // Referer, "" for none
	ua     string // User-Agent, "" for none
	user   string // $remote_user, "" for none
}

// client is one source address.
type client struct {
	logged string // $remote_addr as nginx writes it (may be IPv4-mapped)
	key    string // truth key: the unmapped address
	xff    string // X-Forwarded-For, "" for none
	actor  int32  // index into gen.actors, -1 for ordinary traffic
}

// late is a line held back to be written out of order.
type late struct {
	r       rec
	release int64 // write once the stream reaches this event time
}

// gen is one generation run. It is not safe for concurrent use.
type gen struct {
	cfg     Config
	format  int
	rng     *rand.Rand
	span    int64 // ns of event time the log covers: Lines/Rate
	clients []client
	used    map[netip.Addr]struct{}
	actors  []actor
	planned []rec // actor requests, sorted by at before run writes them
	oracle  oracle

	startSec  int64 // Start, split so event seconds need no time.Time
	startNano int64
	tsSec     int64 // second whose timestamp ts holds
	ts        []byte
	buf       []byte
	held      []late
	lines     int
	junk      int
	cut       int // junk lines cut short
}

const (
	fmtCombined = iota
	fmtMain
	fmtJSON
)

// newGen prepares a run of cfg, which has its defaults applied.
func newGen(cfg Config) *gen {
	g := &gen{
		cfg:       cfg,
		rng:       rand.New(rand.NewPCG(uint64(cfg.Seed), 0x76696769_6c6c6f67)),
		span:      int64(float64(cfg.Lines) / cfg.Rate * 1e9),
		used:      make(map[netip.Addr]struct{}),
		oracle:    newOracle(),
		startSec:  cfg.Start.Unix(),
		startNano: int64(cfg.Start.Nanosecond()),
		tsSec:     math.MinInt64,
		buf:       make([]byte, 0, 1024),
	}
	switch cfg.Format {
	case FormatMain:
		g.format = fmtMain
	case FormatJSON:
		g.format = fmtJSON
	}
	return g
}

// run plans the actors and writes all lines: the actors' requests, the
// ordinary traffic and the junk, merged in event-time order.
func (g *gen) run(out *bufio.Writer, pace func(at int64) error) error {
	nJunk := int(math.Round(float64(g.cfg.Lines) * g.cfg.Junk))
	g.plan(int(actorShare * float64(g.cfg.Lines-nJunk)))
	slices.SortStableFunc(g.planned, func(a, b rec) int { return cmp.Compare(a.at, b.at) })
	nNormal := g.cfg.Lines - nJunk - len(g.planned)
	u := newUsers(g, nNormal)

	meanNormal := float64(g.span) / float64(max(nNormal, 1))
	meanJunk := float64(g.span) / float64(max(nJunk, 1))
	tNormal := int64(g.rng.ExpFloat64() * meanNormal)
	tJunk := int64(g.rng.ExpFloat64() * meanJunk)
	ai := 0
	for nNormal > 0 || nJunk > 0 || ai < len(g.planned) {
		at, src := int64(math.MaxInt64), 0
		if ai < len(g.planned) {
			at, src = g.planned[ai].at, 1
		}
		if nNormal > 0 && tNormal < at {
			at, src = tNormal, 2
		}
		if nJunk > 0 && tJunk < at {
			at, src = tJunk, 3
		}
		if pace != nil {
			if err := pace(at); err != nil {
				return err
			}
		}
		if err := g.release(out, at); err != nil {
			return err
		}
		var err error
		switch src {
		case 1:
			err = g.emit(out, &g.planned[ai])
			ai++
		case 2:
			r := u.next(at)
			err = g.emit(out, &r)
			nNormal--
			tNormal += int64(g.rng.ExpFloat64() * meanNormal)
		case 3:
			err = g.writeJunk(out, at)
			nJunk--
			tJunk += int64(g.rng.ExpFloat64() * meanJunk)
		}
		if err != nil {
			return err
		}
	}
	return g.release(out, math.MaxInt64)
}

// emit writes r now or, for a few lines, holds it back to be written up to
// lateMax later.
func (g *gen) emit(out *bufio.Writer, r *rec) error {
	if g.rng.Float64() < lateShare {
		d := lateMin + g.rng.Int64N(lateMax-lateMin+1)
		g.held = append(g.held, late{r: *r, release: r.at + d})
		return nil
	}
	return g.write(out, r)
}

// release writes the held lines due by event time at.
func (g *gen) release(out *bufio.Writer, at int64) error {
	for i := 0; i < len(g.held); {
		if g.held[i].release > at {
			i++
			continue
		}
		r := g.held[i].r
		g.held = slices.Delete(g.held, i, i+1)
		if err := g.write(out, &r); err != nil {
			return err
		}
	}
	return nil
}

// write formats r, writes it and shows it to the oracle.
func (g *gen) write(out *bufio.Writer, r *rec) error {
	g.buf = g.appendRec(g.buf[:0], r)
	if _, err := out.Write(g.buf); err != nil {
		return fmt.Errorf("writing log: %w", err)
	}
	g.lines++
	g.oracle.observe(g.clients[r.client].key, g.sec(r.at), r.method, r.target, int(r.status))
	return nil
}

// writeJunk writes one junk line at event time at.
func (g *gen) writeJunk(out *bufio.Writer, at int64) error {
	var cut bool
	g.buf, cut = g.appendJunk(g.buf[:0], at)
	if _, err := out.Write(g.buf); err != nil {
		return fmt.Errorf("writing log: %w", err)
	}
	g.lines++
	g.junk++
	if cut {
		g.cut++
	}
	return nil
}

// sec is the Unix second of event time at, as the log shows it.
func (g *gen) sec(at int64) int64 {
	return g.startSec + (g.startNano+at)/1e9
}

// truth evaluates the oracle with the given window and labels the result.
func (g *gen) truth(window int64) []Truth {
	owner := make(map[string]string, len(g.actors))
	for _, a := range g.actors {
		owner[a.Key] = a.Name
	}
	t := g.oracle.truth(window)
	for i := range t {
		t[i].Actor = owner[t[i].Key]
		if t[i].Actor == "" {
			t[i].Actor = "user"
		}
	}
	return t
}
