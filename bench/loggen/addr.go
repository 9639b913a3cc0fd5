package loggen

import (
	"net/netip"
)

// Address families a client can be drawn from.
const (
	addrPublic  = iota // random public-looking IPv4, never a reserved range
	addrDoc            // IPv4 documentation ranges (RFC 5737)
	addrV6             // 2001:db8::/32, standing in for public IPv6
	addrPrivate        // 10.0.0.0/8 or 192.168.0.0/16: allow-listed
)

// docNets are the RFC 5737 documentation networks; only actors use them.
var docNets = [3][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}

// newClient allocates a client with an address of the given family that no
// other client of this run has. When mapped is true and the address is
// IPv4, nginx logs it IPv4-mapped (::ffff:a.b.c.d) as a dual-stack listener
// does; the truth key stays the plain IPv4 form.
func (g *gen) newClient(family int, mapped bool) int32 {
	var a netip.Addr
	for {
		a = g.randAddr(family)
		if _, dup := g.used[a]; !dup {
			break
		}
	}
	g.used[a] = struct{}{}
	c := client{key: a.String(), actor: -1}
	c.logged = c.key
	if mapped && a.Is4() {
		c.logged = netip.AddrFrom16(a.As16()).String()
	}
	g.clients = append(g.clients, c)
	return int32(len(g.clients) - 1)
}

// userFamily picks the family of an ordinary client: IPv6 with the
// configured share, otherwise public IPv4.
func (g *gen) userFamily() int {
	if g.rng.Float64() < g.cfg.IPv6Share {
		return addrV6
	}
	return addrPublic
}

// randAddr draws an address of the family, possibly one already used.
func (g *gen) randAddr(family int) netip.Addr {
	r := g.rng
	switch family {
	case addrDoc:
		n := docNets[r.IntN(len(docNets))]
		return netip.AddrFrom4([4]byte{n[0], n[1], n[2], byte(1 + r.IntN(254))})
	case addrV6:
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		if r.IntN(4) == 0 {
			// A server-style address: a short subnet and host, which
			// String compresses ("2001:db8:1f:a::2a").
			b[5] = byte(r.IntN(256))
			b[7] = byte(r.IntN(256))
			b[15] = byte(1 + r.IntN(255))
		} else {
			// A SLAAC or privacy address: random subnet and interface id.
			for i := 4; i < 16; i++ {
				b[i] = byte(r.Uint32())
			}
		}
		return netip.AddrFrom16(b)
	case addrPrivate:
		if r.IntN(2) == 0 {
			return netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
		}
		return netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(256)), byte(1 + r.IntN(254))})
	}
	for {
		v := r.Uint32()
		b := [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
		if b[3] != 0 && b[3] != 255 && !reservedV4(b) {
			return netip.AddrFrom4(b)
		}
	}
}

// reservedV4 reports whether b is in a range a public client cannot have
// (or that the generator keeps for actors): this network, private,
// shared, loopback, link-local, documentation, benchmarking, multicast and
// reserved.
func reservedV4(b [4]byte) bool {
	switch {
	case b[0] == 0, b[0] == 10, b[0] == 127, b[0] >= 224:
		return true
	case b[0] == 100 && b[1]&0xc0 == 64: // 100.64.0.0/10
		return true
	case b[0] == 169 && b[1] == 254:
		return true
	case b[0] == 172 && b[1]&0xf0 == 16: // 172.16.0.0/12
		return true
	case b[0] == 192 && b[1] == 168:
		return true
	case b[0] == 192 && b[1] == 0 && (b[2] == 0 || b[2] == 2):
		return true
	case b[0] == 192 && b[1] == 88 && b[2] == 99:
		return true
	case b[0] == 198 && b[1]&0xfe == 18: // 198.18.0.0/15
		return true
	case b[0] == 198 && b[1] == 51 && b[2] == 100:
		return true
	case b[0] == 203 && b[1] == 0 && b[2] == 113:
		return true
	}
	return false
}

// allowNets is the detector's default allow-list.
var allowNets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")}

// allowlisted reports whether key is in the default allow-list.
func allowlisted(key string) bool {
	a, err := netip.ParseAddr(key)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range allowNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
