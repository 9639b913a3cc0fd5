package detect

import (
	"fmt"
	"net/netip"
)

// DefaultAllowlist are the networks never banned unless configured
// otherwise: loopback, RFC 1918 private ranges, link-local and IPv6
// unique-local addresses.
var DefaultAllowlist = []string{
	"127.0.0.0/8", "::1/128",
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
	"169.254.0.0/16", "fe80::/10",
	"fc00::/7",
}

// Allowlist is a set of networks whose addresses are never acted against. A
// detection for them is still recorded. The zero value allows nothing.
type Allowlist struct {
	prefixes []netip.Prefix
}

// NewAllowlist parses CIDRs (or bare addresses). The error names the entry.
func NewAllowlist(cidrs []string) (*Allowlist, error) {
	a := &Allowlist{}
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			addr, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return nil, fmt.Errorf("allowlist[%d]: %q is not a CIDR or an address", i, c)
			}
			p = netip.PrefixFrom(addr, addr.BitLen())
		}
		a.prefixes = append(a.prefixes, p.Masked())
	}
	return a, nil
}

// Contains reports whether addr is in one of the networks.
func (a *Allowlist) Contains(addr netip.Addr) bool {
	if a == nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Prefixes returns the networks as CIDR strings.
func (a *Allowlist) Prefixes() []string {
	out := make([]string, len(a.prefixes))
	for i, p := range a.prefixes {
		out[i] = p.String()
	}
	return out
}
